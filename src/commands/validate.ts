// Subpath imports: oclif's index would load all of oclif (help, ux, ...) at every start.
import * as Args from '@oclif/core/args';
import { Command } from '@oclif/core/command';
import * as Flags from '@oclif/core/flags';

export default class Validate extends Command {
  static override summary = 'Check a machine file and print the resolved machine as a tree.';
  static override description = `Every plugin instance with its settings after defaults, user defaults and --set overrides,
and what each of its needs is wired to. Exit code 0 when the machine is valid; otherwise every error
as FILE:LINE:COL: message with a hint, and exit code 2.`;

  static override examples = [
    '<%= config.bin %> validate machines/q35-sample.yaml',
    '<%= config.bin %> validate machines/q35-nimbos.yaml --set guest.memory=32MiB',
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
      description: 'override one setting, typed by its schema (repeatable)',
    }),
    kernel: Flags.string({
      helpValue: 'FILE',
      description: 'shorthand the machine file maps to its kernel setting',
    }),
    append: Flags.string({
      helpValue: 'ARGS',
      description: 'shorthand the machine file maps to the kernel command line',
    }),
    initrd: Flags.string({
      helpValue: 'FILE[,FILE...]',
      description: 'shorthand the machine file maps to boot modules',
    }),
    json: Flags.boolean({ description: 'print the resolved machine as JSON on stdout' }),
    'no-user-config': Flags.boolean({ description: 'ignore .vmmrc.yaml and package.json "vmm" defaults' }),
    'log-level': Flags.option({
      options: ['error', 'warn', 'info', 'debug', 'trace'] as const,
      description: 'debug also shows stack traces of errors',
    })(),
  };

  async run(): Promise<void> {
    const { args, flags } = await this.parse(Validate);
    const { runValidate } = await import('../cli-lib/commands.js');
    process.exitCode = await runValidate({
      file: args.file,
      set: flags.set ?? [],
      shorthands: { kernel: flags.kernel, append: flags.append, initrd: flags.initrd },
      json: flags.json,
      noUserConfig: flags['no-user-config'],
      debug: flags['log-level'] === 'debug' || flags['log-level'] === 'trace',
    });
  }
}
