// Preloaded into the runner (NODE_OPTIONS=--import) when the database bench
// profiles it: --cpu-prof writes its profile only on a normal exit, so turn
// SIGTERM/SIGINT into one.
for (const signal of ["SIGTERM", "SIGINT"]) process.once(signal, () => process.exit(0));
