// Bounded concurrency, for the Worker, the runner and the benchmarks alike.

/**
 * Runs `fn` over items (an array, or an async iterable read only as fast as
 * lanes free up) with at most `limit` at once. The first failure stops new
 * work and is thrown once the running ones have settled.
 */
export async function forEachLimited<T>(
  items: Iterable<T> | AsyncIterable<T>, limit: number, fn: (item: T) => Promise<unknown>,
): Promise<void> {
  const active = new Set<Promise<void>>();
  let failure: { error: unknown } | undefined;
  for await (const item of items) {
    if (failure) break;
    const running: Promise<void> = fn(item).then(
      () => {},
      (error: unknown) => {
        failure ??= { error };
      },
    ).finally(() => active.delete(running));
    active.add(running);
    if (active.size >= limit) await Promise.race(active);
  }
  await Promise.all(active);
  if (failure) throw failure.error;
}
