/**
 * Schema checks with errors that point at the text: each zod issue becomes a VmmError with the
 * file, line and column of the offending value (or key), a message that says what was expected,
 * and a hint (the nearest valid key for a typo, the expected type and the setting's description).
 */
import type { z } from 'zod';
import { VmmError } from '../core/errors.js';
import { getNode, locate, type LNode, type PathSeg, type Pos } from './located.js';
import { nearest } from './suggest.js';

/** zod 4 keeps a schema's structure in `_zod.def`; we only walk it for hints and key lists. */
interface Def {
  type: string;
  shape?: Record<string, z.ZodType>;
  innerType?: z.ZodType;
  element?: z.ZodType;
  in?: z.ZodType;
  options?: z.ZodType[];
  entries?: Record<string, string | number>;
}
const defOf = (s: z.ZodType): Def => (s as unknown as { _zod: { def: Def } })._zod.def;

/** Unwrap optional/default/pipe wrappers. */
export function unwrap(s: z.ZodType): z.ZodType {
  for (;;) {
    const d = defOf(s);
    if (
      (d.type === 'optional' || d.type === 'default' || d.type === 'nullable' || d.type === 'prefault') &&
      d.innerType
    ) {
      s = d.innerType;
    } else if (d.type === 'pipe' && d.in) {
      s = d.in;
    } else return s;
  }
}

/** The sub-schema at a path, or undefined. */
export function schemaAt(s: z.ZodType, path: readonly PathSeg[]): z.ZodType | undefined {
  let cur: z.ZodType | undefined = s;
  for (const seg of path) {
    if (!cur) return undefined;
    const d = defOf(unwrap(cur));
    if (d.type === 'object' && typeof seg === 'string') cur = d.shape?.[seg];
    else if (d.type === 'array' && typeof seg === 'number') cur = d.element;
    else if (d.type === 'record') cur = (d as unknown as { valueType: z.ZodType }).valueType;
    else return undefined;
  }
  return cur;
}

export function objectKeys(s: z.ZodType | undefined): string[] {
  if (!s) return [];
  const d = defOf(unwrap(s));
  return d.type === 'object' && d.shape ? Object.keys(d.shape) : [];
}

export function describeSchema(s: z.ZodType | undefined): string | undefined {
  if (!s) return undefined;
  let cur: z.ZodType = s;
  for (;;) {
    if (cur.description) return cur.description;
    const d = defOf(cur);
    const inner = d.innerType ?? d.in;
    if (!inner) return undefined;
    cur = inner;
  }
}

/** A readable name for a schema's expected type (for hints). */
export function typeName(s: z.ZodType | undefined): string {
  if (!s) return 'a value';
  const meta = (s as unknown as { meta?: () => Record<string, unknown> | undefined }).meta?.();
  if (meta && typeof meta.vmmType === 'string') return meta.vmmType;
  const d = defOf(s);
  switch (d.type) {
    case 'optional':
    case 'default':
    case 'nullable':
    case 'prefault':
      return typeName(d.innerType);
    case 'pipe':
      return typeName(d.in);
    case 'number':
      return 'number';
    case 'string':
      return 'string';
    case 'boolean':
      return 'boolean (true or false)';
    case 'enum':
      return `one of ${Object.values(d.entries ?? {}).join(', ')}`;
    case 'literal':
      return `the value ${JSON.stringify((d as unknown as { values: unknown[] }).values[0])}`;
    case 'array': {
      const el = d.element ? typeName(d.element) : 'value';
      return el === 'a mapping' ? 'a list' : `a list of ${el}s`;
    }
    case 'object':
      return 'a mapping';
    case 'record':
      return 'a mapping';
    case 'union':
      return (d.options ?? []).map(typeName).join(' or ');
    default:
      return d.type;
  }
}

const article = (t: string) =>
  /^(a |an |one of|the )/.test(t) ? t : /^[aeiou]/.test(t) ? `an ${t}` : `a ${t}`;

function describeValue(v: unknown): string {
  if (v === null || v === undefined) return 'nothing';
  if (Array.isArray(v)) return 'a list';
  if (typeof v === 'object') return 'a mapping';
  if (typeof v === 'string') return `the string ${JSON.stringify(v)}`;
  return `${typeof v} ${String(v)}`;
}

export interface IssueContext {
  /** The located tree the checked data came from. */
  root: LNode;
  /** Path of the checked data inside the tree. */
  base: readonly PathSeg[];
  /** How to name the checked thing in messages: `uart16550 (host.devices[0])`, or undefined for the machine. */
  subject?: string;
  /** The word for keys: "setting" for plugins, "key" for the machine description. */
  keyWord: string;
  schema: z.ZodType;
  /** The plugin instance name, for error locations. */
  plugin?: string;
}

export function issuesToErrors(issues: readonly z.core.$ZodIssue[], ctx: IssueContext): VmmError[] {
  const out: VmmError[] = [];
  const of = ctx.subject ? ` for ${ctx.subject}` : '';
  for (const issue of issues) {
    const rel = issue.path.filter((p): p is PathSeg => typeof p === 'string' || typeof p === 'number');
    const full = [...ctx.base, ...rel];
    const sub = schemaAt(ctx.schema, rel);
    const settingName = rel
      .map((p, i) => (typeof p === 'number' ? `[${p}]` : i === 0 ? p : `.${p}`))
      .join('');
    const mk = (pos: Pos, message: string, hint?: string) =>
      new VmmError('config-invalid', message, {
        location: {
          ...(pos.line > 0 ? { file: pos.file, line: pos.line, col: pos.col } : { file: pos.file }),
          ...(ctx.plugin ? { plugin: ctx.plugin } : {}),
          path: full.join('.'),
        },
        ...(hint ? { hint } : {}),
      });
    switch (issue.code) {
      case 'unrecognized_keys': {
        const valid = objectKeys(sub);
        for (const key of issue.keys) {
          const pos = locate(ctx.root, [...full, key], true);
          const near = nearest(key, valid);
          const list = valid.filter((k) => k !== '$schema').join(', ');
          out.push(
            mk(
              pos,
              `unknown ${ctx.keyWord} "${key}"${of}`,
              near ? `did you mean "${near}"?` : list ? `valid ${ctx.keyWord}s: ${list}` : undefined,
            ),
          );
        }
        break;
      }
      case 'invalid_type': {
        const node = getNode(ctx.root, full);
        const missing =
          node === undefined || (node.kind === 'scalar' && node.value === null && issue.input === undefined);
        const expected = issue.expected === 'int' ? 'integer' : typeName(sub);
        const desc = describeSchema(sub);
        if (missing && node === undefined) {
          out.push(
            mk(
              locate(ctx.root, full),
              `missing ${ctx.keyWord} "${settingName}"${of}: expected ${article(expected)}`,
              desc ? `${settingName}: ${desc}` : undefined,
            ),
          );
        } else {
          out.push(
            mk(
              locate(ctx.root, full),
              `${settingName || ctx.keyWord}${of}: expected ${article(expected)}, got ${describeValue(issue.input)}`,
              desc ? `${settingName}: ${desc}` : undefined,
            ),
          );
        }
        break;
      }
      case 'too_big':
      case 'too_small': {
        const bound = issue.code === 'too_big' ? issue.maximum : issue.minimum;
        const word = issue.code === 'too_big' ? 'large' : 'small';
        const limit = issue.code === 'too_big' ? 'maximum' : 'minimum';
        const b = typeof bound === 'bigint' ? bound.toString() : String(bound);
        const what =
          issue.origin === 'array' || issue.origin === 'string'
            ? `too ${issue.code === 'too_big' ? 'long' : 'short'}`
            : `too ${word}`;
        out.push(
          mk(
            locate(ctx.root, full),
            `${settingName}${of}: ${describeValue(issue.input)} is ${what} (${limit} ${hexIfBig(b)})`,
            describeSchema(sub) ? `${settingName}: ${describeSchema(sub)}` : undefined,
          ),
        );
        break;
      }
      case 'invalid_value': {
        const values = issue.values.map((v) => String(v));
        const got = issue.input;
        const near = typeof got === 'string' ? nearest(got, values) : undefined;
        out.push(
          mk(
            locate(ctx.root, full),
            `${settingName}${of}: ${describeValue(got)} is not one of ${values.join(', ')}`,
            near ? `did you mean "${near}"?` : undefined,
          ),
        );
        break;
      }
      case 'invalid_union': {
        const expected = typeName(sub);
        out.push(
          mk(
            locate(ctx.root, full),
            `${settingName}${of}: expected ${article(expected)}, got ${describeValue(issue.input)}`,
          ),
        );
        break;
      }
      case 'not_multiple_of':
        out.push(
          mk(
            locate(ctx.root, full),
            `${settingName}${of}: ${describeValue(issue.input)} is not a multiple of ${String(issue.divisor)}`,
          ),
        );
        break;
      default: {
        const prefix = settingName ? `${settingName}${of}: ` : ctx.subject ? `${ctx.subject}: ` : '';
        out.push(mk(locate(ctx.root, full), `${prefix}${issue.message}`));
      }
    }
  }
  return out;
}

function hexIfBig(n: string): string {
  const v = Number(n);
  return Number.isInteger(v) && v >= 0x1000 ? `0x${v.toString(16)}` : n;
}
