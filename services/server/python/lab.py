"""The Python image's entry point, spelled like the Node image's `lab`: `serve <variant> [flags]`
runs services/variants/<variant>/server.py, `variants` lists them. Compose runs every variant as
`serve <name>`, whichever image it has."""

import os
import runpy
import sys

# services/server/python/lab.py -> services/variants/
SERVICES = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))), 'variants')


def variants():
    return sorted(name for name in os.listdir(SERVICES) if os.path.isfile(os.path.join(SERVICES, name, 'server.py')))


def main(argv):
    if argv[:1] == ['variants']:
        print('\n'.join(variants()))
        return 0
    if len(argv) < 2 or argv[0] != 'serve' or argv[1] not in variants():
        given = argv[1] if argv[:1] == ['serve'] and len(argv) > 1 else ' '.join(argv)
        print(f'lab: invalid <variant>: unknown variant "{given}": expected one of {", ".join(variants())} (usage: serve <variant> [flags])', file=sys.stderr)
        return 2
    script = os.path.join(SERVICES, argv[1], 'server.py')
    sys.argv = [script, *argv[2:]]
    runpy.run_path(script, run_name='__main__')
    return 0


if __name__ == '__main__':
    sys.exit(main(sys.argv[1:]))
