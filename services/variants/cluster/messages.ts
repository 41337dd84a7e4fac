// `cluster`: the primary and its workers.

/** A cluster worker -> the primary. */
export type ClusterWorkerMessage =
  | { type: 'listening'; port: number }
  /** May one more connection open (the cap is counted across the cluster)? */
  | { type: 'acquire'; id: number }
  | { type: 'release' }
  | { type: 'metrics'; id: number; metrics: unknown[] };

/** The primary -> a cluster worker. */
export type ClusterPrimaryMessage =
  | { type: 'acquired'; id: number; ok: boolean }
  | { type: 'collect'; id: number }
  | { type: 'drain' }
  /** The drain timeout passed: answer what is left `unavailable` and close. */
  | { type: 'abort' };
