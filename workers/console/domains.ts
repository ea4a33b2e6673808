// The kinds of protected source the console shows, in the order it lists them.
export const DOMAINS = ["database", "storage", "ml", "training_data"] as const;
export type Domain = (typeof DOMAINS)[number];
