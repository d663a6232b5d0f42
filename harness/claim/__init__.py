"""What a claim is: Claim, Check, Tier and the registry, expectations, verdicts, records, configs,
components, declared outputs, measurements and the seed design. Imports nothing above it."""
