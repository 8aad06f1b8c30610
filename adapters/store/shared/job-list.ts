/**
 * What every store shares of `jobs.list`'s view and byte budget (the port's
 * `JobListQuery`): checking them, and the rule that ends a page early.
 */
import type { JobListView } from '../../../runtime/index.js';
import { StoreFault } from './store-fault.js';

/** The view and budget of a list query, checked. */
export interface JobListOptions {
  readonly view: JobListView;
  /** Undefined: no budget. */
  readonly maxBytes: number | undefined;
}

/** Checks `view` and `maxBytes` of a `jobs.list` query (`invalid` fault when wrong). */
export function jobListOptions(q: { view?: unknown; maxBytes?: unknown }): JobListOptions {
  const view = q.view ?? 'full';
  if (view !== 'full' && view !== 'summary') {
    throw new StoreFault('invalid', `view must be 'full' or 'summary', not ${String(view)}`);
  }
  const maxBytes = q.maxBytes;
  if (maxBytes !== undefined && !(Number.isSafeInteger(maxBytes) && (maxBytes as number) > 0)) {
    throw new StoreFault('invalid', `maxBytes must be a positive whole number`);
  }
  return { view, maxBytes: maxBytes as number | undefined };
}

/** Bytes of a document's JSON text as stored and sent (UTF-8). */
export const jsonBytes = (text: string): number => Buffer.byteLength(text, 'utf8');

/**
 * Keeps the running size of a page under a byte budget. {@link PageBudget.admits} says
 * whether the next item still fits; the first item always does (a page must make
 * progress, so one job larger than the budget comes alone).
 */
export class PageBudget {
  readonly #max: number | undefined;
  #bytes = 0;
  #items = 0;

  constructor(maxBytes: number | undefined) {
    this.#max = maxBytes;
  }

  /** True when there is a budget at all (without one, sizes need not be measured). */
  get limited(): boolean {
    return this.#max !== undefined;
  }

  /** Takes an item of `bytes` into the page if it fits; false (nothing taken) if not. */
  admits(bytes: number): boolean {
    if (this.#max !== undefined && this.#items > 0 && this.#bytes + bytes > this.#max) {
      return false;
    }
    this.#bytes += bytes;
    this.#items++;
    return true;
  }
}
