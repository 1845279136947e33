/// A rules file for a test: `version: 1` and the sections given, in the file's usual order, each section's lines
/// written as they stand under its key (`  - { name: simple, … }`). The tests' rules files differ in their
/// sections, not in this frame, so every target builds them here.
public func rulesFile(analyze: String? = nil, providers: String? = nil, levels: String, routes: String, rules: String? = nil) -> String {
    var yaml = "version: 1\n"
    if let analyze { yaml += "analyze: \(analyze)\n" }
    if let providers { yaml += "providers:\n\(providers)\n" }
    yaml += "levels:\n\(levels)\nroutes:\n\(routes)"
    if let rules { yaml += "\nrules:\n\(rules)" }
    return yaml
}

/// The usual two levels: `simple` (a score up to `maxScore`) streams on route `fast`; `complex` gets advice
/// on route `desktop`.
public func twoLevels(maxScore: Int = 2) -> String {
    """
      - { name: simple, max_score: \(maxScore), route: fast, estimated_seconds: 3 }
      - { name: complex, route: desktop, estimated_seconds: 25 }
    """
}

/// `twoLevels`' routes: `fast` streams on `model`, `desktop` advises the desktop client.
public func twoRoutes(model: String = "claude-haiku-4-5", maxIterations: Int = 3) -> String {
    """
      fast: { action: stream, model: \(model), max_iterations: \(maxIterations) }
      desktop: { action: advise, message: "Use the desktop client." }
    """
}
