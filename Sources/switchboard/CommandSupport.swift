import ArgumentParser
import ChatCore
import Foundation
import Logging
import Routing
import ConfigFiles
import Storage
import Tools

/// `--database`, for the commands that work on the HR database without a server.
struct DatabaseOption: ParsableArguments {
    @Option(help: "HR database: a SQLite file (default data/switchboard.sqlite), :memory:, or a postgres:// URL.")
    var database = "data/switchboard.sqlite"

    /// Runs `body` with the built-in tools on the database, opened, prepared and seeded; a PostgreSQL pool runs
    /// beside it and stops after.
    func withBuiltInTools<T: Sendable>(logger: Logger, _ body: @escaping @Sendable (ToolBox) async throws -> T) async throws -> T {
        try await withDatabase(logger: logger) { database in
            var registry = ToolRegistry()
            registry.register(HRTools.all(database: database), source: "built-in")
            return try await body(registry.toolBox)
        }
    }

    /// Runs `body` with the database, opened, prepared and seeded; a PostgreSQL pool runs beside it and stops after.
    func withDatabase<T: Sendable>(logger: Logger, _ body: @escaping @Sendable (any SQLDatabase) async throws -> T) async throws -> T {
        let opened = try await PreparedDatabase.open(DatabaseLocation(database), schemas: [HRSchema.databaseSchema, StreamRecords.databaseSchema],
                                                     logger: logger)
        guard let service = opened.service else { return try await body(opened.database) }
        return try await withThrowingTaskGroup(of: T?.self) { group in
            group.addTask { try await service.run(); return nil }
            group.addTask { try await body(opened.database) }
            // The pool runs until cancelled; the first result is the body's (or an error from either).
            while let result = try await group.next() {
                if let result {
                    group.cancelAll()
                    return result
                }
            }
            throw CancellationError()
        }
    }
}

/// The rules file argument of the `rules` commands.
struct RulesFileArgument: ParsableArguments {
    @Argument(help: "The rules file.")
    var path: String = "rules.yaml"

    /// The file loaded as the server loads it: the rules, or why not, with every diagnostic.
    func load() -> RuleSetLoader.Outcome {
        RulesFile.load(.file(path))
    }
}

/// A logger for a command whose standard output is its product (tool results, the MCP protocol):
/// every line goes to standard error, at `LOG_LEVEL` or `defaultLevel`.
func standardErrorLogger(label: String, defaultLevel: Logger.Level = .warning) -> Logger {
    var logger = Logger(label: label) { StreamLogHandler.standardError(label: $0) }
    logger.logLevel = ProcessInfo.processInfo.environment["LOG_LEVEL"].flatMap(Logger.Level.init(rawValue:)) ?? defaultLevel
    return logger
}

/// `--rules`, for the commands that run on the rules the server would serve.
struct RulesOption: ParsableArguments {
    @Option(name: .customLong("rules"), help: "Rules file (default: ./rules.yaml if present, else the built-in rules).")
    var path: String?

    /// The rules, loaded as the server loads them; invalid rules are printed compiler-style and exit 2.
    func load() throws -> RuleSet {
        try loadRules(path)
    }
}

/// Loads rules for a CLI command, printing diagnostics and exiting non-zero when they are invalid.
func loadRules(_ path: String?) throws -> RuleSet {
    let source = RulesSource.resolve(explicitPath: path)
    let outcome = RulesFile.load(source)
    guard let rules = outcome.accepted else {
        for diagnostic in outcome.diagnostics { printError(diagnostic.description) }
        throw ExitCode(2)
    }
    return rules
}

func printError(_ line: String) {
    FileHandle.standardError.write(Data((line + "\n").utf8))
}
