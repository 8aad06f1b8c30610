/**
 * JSON bodies with a `__proto__` key, or a `constructor` key holding `prototype`, are
 * refused (prototype poisoning: merged into an object, they change every object's
 * prototype). Fastify's parser refuses them with the same error as broken JSON; this
 * names what is wrong instead: where the key is, and that the key itself is the reason.
 */
import { FleetError } from '../../runtime/index.js';

/** Where a forbidden key sits (`manifestSnapshot.__proto__`), or null if nowhere. */
export function findForbiddenKey(value: unknown): string | null {
  // Iterative: a body may be nested deeper than the call stack allows.
  const stack: { value: unknown; path: string }[] = [{ value, path: '' }];
  while (stack.length > 0) {
    const { value: v, path } = stack.pop()!;
    if (typeof v !== 'object' || v === null) continue;
    const at = (k: string | number) => (path === '' ? String(k) : `${path}.${k}`);
    if (Array.isArray(v)) {
      for (let i = v.length - 1; i >= 0; i--) stack.push({ value: v[i], path: at(i) });
      continue;
    }
    const record = v as Record<string, unknown>;
    if (Object.hasOwn(record, '__proto__')) return at('__proto__');
    const ctor = record.constructor;
    if (
      Object.hasOwn(record, 'constructor') &&
      typeof ctor === 'object' &&
      ctor !== null &&
      Object.hasOwn(ctor, 'prototype')
    ) {
      return at('constructor.prototype');
    }
    const keys = Object.keys(record);
    for (let i = keys.length - 1; i >= 0; i--) {
      stack.push({ value: record[keys[i]!], path: at(keys[i]!) });
    }
  }
  return null;
}

/**
 * The problem for a JSON body the parser refused, if the reason is a forbidden key:
 * `400 VALIDATION` naming it. Null when the text is not JSON at all (then it is "not
 * valid JSON", as before).
 */
export function forbiddenKeyError(text: string): FleetError | null {
  let value: unknown;
  try {
    // Plain JSON.parse makes `__proto__` an own property: nothing is poisoned here.
    value = JSON.parse(text);
  } catch {
    return null;
  }
  const path = findForbiddenKey(value);
  const key = path?.endsWith('constructor.prototype')
    ? '"constructor" with "prototype"'
    : '"__proto__"';
  const message = `the key ${key} is not accepted in JSON bodies (it could change object prototypes); rename or remove it`;
  return new FleetError(
    'VALIDATION',
    path === null ? `body: ${message}` : `body.${path}: ${message}`,
    {
      extra: { errors: [{ in: 'body', path: path ?? '', message }] },
    },
  );
}
