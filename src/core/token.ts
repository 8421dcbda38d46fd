/** A typed DI token (tsyringe takes the symbol; the type parameter keeps `ctx.get` typed). */
export interface Token<T> {
  readonly key: symbol;
  readonly name: string;
  readonly description: string;
  /** Phantom field carrying the type; never set. */
  readonly __type?: T;
}

export function token<T>(name: string, description: string): Token<T> {
  return { key: Symbol.for(`vmm:${name}`), name, description };
}
