// Preloaded into Haraka (node -r) when the delivery benchmark profiles it: Haraka has no SIGTERM
// handler, so node would die without writing its --cpu-prof profile; this makes SIGTERM an exit.
process.on('SIGTERM', () => process.exit(0))
