/**
 * Where the client keeps its cursor between sessions. The Web Storage API
 * fits as it is (`storage: localStorage`); asynchronous stores (React
 * Native's AsyncStorage, IndexedDB wrappers) may return promises.
 */
export interface CursorStorage {
  getItem(key: string): string | null | undefined | Promise<string | null | undefined>;
  setItem(key: string, value: string): void | Promise<void>;
}

/** A storage that lives as long as the page or process: the default. */
export function memoryStorage(): CursorStorage {
  const m = new Map<string, string>();
  return {
    getItem: (k) => m.get(k) ?? null,
    setItem: (k, v) => {
      m.set(k, v);
    },
  };
}
