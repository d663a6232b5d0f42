"""Running claims: options and values, one seed through cache and lock (seeds), the runner, its
process pool and executors (local, SLURM), the store, provenance, progress, the loader, and
reading runs back (history, perf ratios). Built on the claim model and the science below."""
