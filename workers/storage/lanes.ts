// Bounded concurrency for moving objects (plain TypeScript: the Node-side tests import it too).

/**
 * Objects handled at once. A Worker holds at most 6 connections open and a
 * copy holds two (the source's body streaming into the put): with more lanes,
 * every lane can hold a GET open while waiting for a slot for its PUT, and
 * the step deadlocks (seen locally with 6 lanes at 10,000 objects).
 */
export const COPY_LANES = 3;

/** Runs fn over items with at most `limit` at once; the first error is thrown after the running ones settle. */
export async function forEachLimited<T>(items: readonly T[], limit: number, fn: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  let failure: { error: unknown } | undefined;
  const lane = async () => {
    while (!failure && next < items.length) {
      const item = items[next++]!;
      try {
        await fn(item);
      } catch (error) {
        failure ??= { error };
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, lane));
  if (failure) throw failure.error;
}
