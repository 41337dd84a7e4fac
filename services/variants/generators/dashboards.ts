// `generators`' own panel on the one-variant dashboard (its row of the variant table adds it).

import { ONE, rate, type VariantDashboards } from '../../lab/dashboards.js';

export const generatorsDashboards: VariantDashboards = {
  variantPanels: [
    {
      title: 'Generator slices per second',
      description: 'Fib slices its scheduler runs (FIB_SLICE calls each): the rate of switching between tasks.',
      unit: 'ops',
      queries: [{ expr: `sum(${rate('fib_generator_slices_total', ONE)})`, legend: 'slices' }],
    },
  ],
};
