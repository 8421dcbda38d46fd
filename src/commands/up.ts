// Subpath imports: oclif's index would load all of oclif (help, ux, ...) at every start.
import * as Args from '@oclif/core/args';
import { Command } from '@oclif/core/command';
import * as Flags from '@oclif/core/flags';

export default class Up extends Command {
  static override summary = 'Build a machine from its description and run it on this terminal.';
  static override description = `The guest's console is stdout and stdin; host messages go to stderr.
On a terminal, stdin is in raw mode: C-a x quits, C-a h prints help, C-a C-a sends C-a.
From a pipe, the input is passed as it is (printf 'hello\\n' | vmm up).
The exit code is the guest's power-off code; 124 on timeout, 2 for bad input.`;

  static override examples = [
    '<%= config.bin %> up',
    '<%= config.bin %> up machines/q35-nimbos.yaml --stats',
    '<%= config.bin %> up machines/pc-multiboot.yaml --kernel bench.elf --append "phase=alu"',
    "printf 'hello\\npoweroff\\n' | <%= config.bin %> up --quiet",
  ];

  static override args = {
    file: Args.string({ description: 'machine file (default: the bundled machines/q35-sample.yaml)' }),
  };

  static override flags = {
    set: Flags.string({
      char: 's',
      multiple: true,
      multipleNonGreedy: true,
      helpValue: 'PATH=VALUE',
      description: 'override one setting, typed by its schema (repeatable): --set guest.memory=32MiB',
    }),
    timeout: Flags.string({
      helpValue: 'SECONDS',
      description: 'stop after this much wall time (exit code 124)',
    }),
    'log-level': Flags.option({
      options: ['error', 'warn', 'info', 'debug', 'trace'] as const,
      description: 'host messages shown on stderr (debug also shows stack traces)',
    })(),
    quiet: Flags.boolean({
      char: 'q',
      description: 'no summary line and only warnings and errors on stderr',
    }),
    stats: Flags.string({
      helpValue: '[json|json=FILE]',
      description: 'at the stop, print every counter: a table on stderr, or JSON on stdout (json) or in FILE',
    }),
    trace: Flags.string({
      helpValue: 'exits[+insn][=FILE]',
      description:
        'record every VM exit (virtual time, reason, qualification, guest RIP, exit information; +insn: the instruction at RIP, disassembled) on stderr or in FILE',
    }),
    clock: Flags.option({
      options: ['deterministic', 'realtime'] as const,
      description: "override the machine's clock mode (realtime paces virtual time to the wall clock)",
    })(),
    kernel: Flags.string({
      helpValue: 'FILE',
      description: 'shorthand the machine file maps to its kernel setting',
    }),
    append: Flags.string({
      helpValue: 'ARGS',
      description: 'shorthand the machine file maps to the kernel command line',
    }),
    disk: Flags.string({
      helpValue: 'FILE',
      description: 'shorthand the machine file maps to its disk image (q35-nimbos.yaml: the FAT disk.img)',
    }),
    initrd: Flags.string({
      helpValue: 'FILE[,FILE...]',
      description: 'shorthand the machine file maps to boot modules',
    }),
    'no-user-config': Flags.boolean({ description: 'ignore .vmmrc.yaml and package.json "vmm" defaults' }),
  };

  async run(): Promise<void> {
    // `--stats` may be given without a value; oclif options always take one, so name the default.
    this.argv = this.argv.map((a) => (a === '--stats' ? '--stats=table' : a));
    const { args, flags } = await this.parse(Up);
    const { runUp, upOptions } = await import('../cli-lib/up.js');
    let opts;
    try {
      opts = upOptions(args.file, flags);
    } catch (e) {
      this.error((e as Error).message, { exit: 2 });
    }
    process.exitCode = await runUp(opts, { signals: true });
    // The machine is gone; if a plugin left a handle open (a timer, a socket), do not hang on it.
    setTimeout(() => process.exit(), 2000).unref();
  }
}
