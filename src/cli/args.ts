/** Thrown for a command line that cannot be understood (exit status 2). */
export class UsageError extends Error {
  /** Creates the error. */
  constructor(message: string) {
    super(message);
    this.name = "UsageError";
  }
}

/** Parsed `--name value`, `--name=value` and boolean `--flag` options. */
export interface ParsedArgs {
  values: Record<string, string>;
  flags: Set<string>;
}

/**
 * Parses options against the allowed names: `valueNames` take a value, `flagNames` do not.
 * Unknown options, missing values and positional arguments are {@linkcode UsageError}s.
 */
export function parseArgs(
  args: readonly string[],
  spec: { values?: readonly string[]; flags?: readonly string[] },
): ParsedArgs {
  const values: Record<string, string> = {};
  const flags = new Set<string>();
  const valueNames = new Set(spec.values ?? []);
  const flagNames = new Set(spec.flags ?? []);
  for (let i = 0; i < args.length; i++) {
    const arg = args[i];
    const match = /^--([a-z][a-z-]*)(?:=(.*))?$/.exec(arg);
    if (!match) throw new UsageError(`Cannot parse argument: current value is "${arg}", expected an --option`);
    const [, name, inline] = match;
    if (valueNames.has(name)) {
      const value = inline ?? args[++i];
      if (value === undefined || value === "") throw new UsageError(`Cannot parse --${name}: it needs a value`);
      values[name] = value;
    } else if (flagNames.has(name) && inline === undefined) {
      flags.add(name);
    } else {
      const known = [...[...valueNames].map((n) => `--${n} VALUE`), ...[...flagNames].map((n) => `--${n}`)];
      throw new UsageError(
        `Cannot parse argument: unknown option --${name}; known: ${known.join(", ") || "none"}`,
      );
    }
  }
  return { values, flags };
}
