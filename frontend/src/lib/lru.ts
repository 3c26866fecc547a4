// A least-recently-used cache bounded by a total cost (e.g. decoded bytes) and an entry count: the
// decoded sprites of the overlay viewer and the feature-map caches.

export class LruCache<K, V> {
  private readonly map = new Map<K, { value: V; cost: number }>();
  private total = 0;

  constructor(
    private readonly maxCost: number,
    private readonly maxEntries = Infinity,
    private readonly onEvict?: (key: K, value: V) => void,
  ) {}

  get size(): number {
    return this.map.size;
  }

  get cost(): number {
    return this.total;
  }

  has(key: K): boolean {
    return this.map.has(key);
  }

  /** The value, marked as most recently used. */
  get(key: K): V | undefined {
    const e = this.map.get(key);
    if (!e) return undefined;
    this.map.delete(key);
    this.map.set(key, e);
    return e.value;
  }

  /** The value without touching its recency. */
  peek(key: K): V | undefined {
    return this.map.get(key)?.value;
  }

  set(key: K, value: V, cost = 1): void {
    const old = this.map.get(key);
    if (old) {
      this.map.delete(key);
      this.total -= old.cost;
      if (old.value !== value) this.onEvict?.(key, old.value);
    }
    this.map.set(key, { value, cost });
    this.total += cost;
    this.trim(key);
  }

  delete(key: K): boolean {
    const e = this.map.get(key);
    if (!e) return false;
    this.map.delete(key);
    this.total -= e.cost;
    this.onEvict?.(key, e.value);
    return true;
  }

  clear(): void {
    for (const key of [...this.map.keys()]) this.delete(key);
  }

  keys(): K[] {
    return [...this.map.keys()];
  }

  /** Evict the oldest entries until within bounds (never the entry just inserted). */
  private trim(keep: K): void {
    while ((this.total > this.maxCost || this.map.size > this.maxEntries) && this.map.size > 1) {
      const oldest = this.map.keys().next().value as K;
      if (oldest === keep) break;
      this.delete(oldest);
    }
  }
}
