// Vite's `?raw` imports (e.g. wrangler.toml in config.test.ts) are the file's text.
declare module "*?raw" {
  const text: string;
  export default text;
}
