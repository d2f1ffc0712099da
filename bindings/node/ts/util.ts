/** Small helpers shared by the hand-written modules. */

/** `read_block_ms` -> `readBlockMs`. */
export function camel(name: string): string {
  return name.replace(/_([a-z0-9])/g, (_, c: string) => c.toUpperCase());
}

/** Milliseconds since the epoch. */
export function nowMs(): number {
  return Date.now();
}
