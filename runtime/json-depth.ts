/**
 * How deep a JSON value nests, found without recursion (a value nested thousands of
 * levels deep must not exhaust the stack of the check meant to refuse it).
 */

/** Most levels of nested objects and arrays in any JSON field a client sends. */
export const MAX_JSON_DEPTH = 64;

/**
 * True when `value` nests objects or arrays more than `max` levels deep (the value
 * itself is level 1 when it is an object or array). Stops at the first level past `max`.
 */
export function jsonDepthExceeds(value: unknown, max: number): boolean {
  const stack: Array<{ value: unknown; depth: number }> = [{ value, depth: 1 }];
  while (stack.length > 0) {
    const { value: v, depth } = stack.pop()!;
    if (v === null || typeof v !== 'object') continue;
    if (depth > max) return true;
    const children = Array.isArray(v) ? v : Object.values(v as Record<string, unknown>);
    for (const child of children) {
      if (child !== null && typeof child === 'object')
        stack.push({ value: child, depth: depth + 1 });
    }
  }
  return false;
}
