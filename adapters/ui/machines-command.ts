/**
 * `fleet machines [--format svg|mermaid|scxml|json] [--machine job|supervisor]`: prints a
 * machine of `machines/`, generated from its definition (see `machine-formats.ts`).
 * The whole command lives here; the CLI only dispatches to {@link runMachinesCommand}.
 */
import { formatMachine, MACHINE_FORMATS, type MachineFormat } from './machine-formats.js';
import { graphOf, INSPECTOR_MACHINES, isMachineName } from './machines.js';

/** The command's usage text. */
export const MACHINES_USAGE = `usage: fleet machines [--format svg|mermaid|scxml|json] [--machine job|supervisor]

Prints a state machine of machines/, generated from its definition.
  --format   svg (the inspector's drawing), mermaid (stateDiagram-v2), scxml, json   default mermaid
  --machine  ${Object.keys(INSPECTOR_MACHINES).join(' | ')}                                          default job`;

const isFormat = (s: string): s is MachineFormat =>
  (MACHINE_FORMATS as readonly string[]).includes(s);

/**
 * Runs the command with `args` (after `machines`); writes the machine to `out` and
 * problems to `err`. Returns the exit status: 0 printed, 2 bad usage.
 */
export function runMachinesCommand(
  args: readonly string[],
  out: (text: string) => void,
  err: (text: string) => void = out,
): number {
  let format: string = 'mermaid';
  let machine: string = 'job';
  for (let i = 0; i < args.length; i++) {
    const arg = args[i]!;
    if (arg === '--help' || arg === '-h') {
      out(`${MACHINES_USAGE}\n`);
      return 0;
    }
    const m = /^--(format|machine)(?:=(.*))?$/.exec(arg);
    if (!m) {
      err(`fleet machines: unknown argument ${arg}\n${MACHINES_USAGE}\n`);
      return 2;
    }
    const value = m[2] ?? args[++i];
    if (value === undefined || value === '') {
      err(`fleet machines: --${m[1]} needs a value\n${MACHINES_USAGE}\n`);
      return 2;
    }
    if (m[1] === 'format') format = value;
    else machine = value;
  }
  if (!isFormat(format)) {
    err(`fleet machines: unknown format ${format} (want ${MACHINE_FORMATS.join(', ')})\n`);
    return 2;
  }
  if (!isMachineName(machine)) {
    err(
      `fleet machines: unknown machine ${machine} (want ${Object.keys(INSPECTOR_MACHINES).join(', ')})\n`,
    );
    return 2;
  }
  out(formatMachine(graphOf(machine), format));
  return 0;
}
