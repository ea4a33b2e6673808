// How many objects a storage step moves at once (plain TypeScript: the off-site code runs in Node tests too).

/**
 * Objects handled at once. A Worker holds at most 6 connections open and a
 * copy holds two (the source's body streaming into the put): with more lanes,
 * every lane can hold a GET open while waiting for a slot for its PUT, and
 * the step deadlocks (seen locally with 6 lanes at 10,000 objects).
 */
export const COPY_LANES = 3;
