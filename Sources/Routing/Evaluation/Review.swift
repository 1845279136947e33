import ChatCore
import Foundation

/// Why a finished chat looks misrouted, read from how it went (no judge model, no second call).
public enum MisrouteSignal: String, Sendable, Hashable, CaseIterable, Encodable {
    /// It reached the iteration limit with the model still asking for tools: routed too low.
    case maxIterations = "max_iterations"
    /// Past its level's limits in the rules' `review:` section, or (a level without them) over `outlier_factor` times
    /// its level's 90th percentile of tool calls or of time, of the completed chats on the level once there are
    /// `min_samples` of them: routed too low.
    case outlier
    /// On a level above the lowest, answered in one model call with no tools, within the lowest level's
    /// `estimated_seconds`: routed too high.
    case oneShortCall = "one_short_call"
    /// Its client said so: feedback `down` naming another level.
    case feedback
}

/// A chat the review flags: what it ran at, why it looks wrong, and where it should have gone.
public struct FlaggedChat: Sendable, Hashable {
    public let stream: ReviewedStream
    /// The level it ran at (smart routing's), or the level its analysis gave (a stream that was not routed).
    public let level: String
    public let signals: [MisrouteSignal]
    public let suggestedLevel: String
    /// Whether the suggested level is a guess from the outcome rather than the client's word.
    public let guessed: Bool
}

/// Finds the misroutes in finished chats by their outcomes and feedback, and writes them as evaluation cases.
public enum Review {
    /// The flagged chats among `streams`, in the order given.
    public static func flag(_ streams: [ReviewedStream], rules: RuleSet) -> [FlaggedChat] {
        let levels = rules.levels.map(\.name)
        guard let lowest = rules.levels.first else { return [] }
        func level(of stream: ReviewedStream) -> String? {
            guard let name = stream.level ?? stream.analysedLevel, levels.contains(name) else { return nil }
            return name
        }
        func above(_ name: String) -> String {
            guard let index = levels.firstIndex(of: name) else { return name }
            return levels[min(index + 1, levels.count - 1)]
        }
        // Each level's bounds: its limits in the file, else outlier_factor times the 90th percentiles of tool calls and
        // duration over its completed chats.
        let settings = rules.review
        var bounds: [String: (toolCalls: Double?, durationMs: Double?)] = [:]
        for name in levels {
            if let limits = settings.limits[name] {
                bounds[name] = (limits.maxToolCalls.map(Double.init), limits.maxSeconds.map { $0 * 1000 })
                continue
            }
            let completed = streams.filter { level(of: $0) == name && $0.outcome == StreamOutcome.complete.rawValue }
            guard completed.count >= settings.minSamples else { continue }
            bounds[name] = (settings.outlierFactor * Double(max(percentile90(completed.map(\.toolCalls)), 1)),
                            settings.outlierFactor * Double(max(percentile90(completed.map(\.durationMs)), 1)))
        }
        return streams.compactMap { stream in
            guard let name = level(of: stream) else { return nil }
            var signals: [MisrouteSignal] = []
            var suggested = name
            var guessed = true
            if stream.stopReason == StopReason.maxIterations.rawValue {
                signals.append(.maxIterations)
                suggested = above(name)
            }
            if let bound = bounds[name], stream.outcome == StreamOutcome.complete.rawValue,
               bound.toolCalls.map({ Double(stream.toolCalls) > $0 }) == true || bound.durationMs.map({ Double(stream.durationMs) > $0 }) == true {
                signals.append(.outlier)
                suggested = above(name)
            }
            if name != lowest.name, stream.outcome == StreamOutcome.complete.rawValue, stream.iterations == 1, stream.toolCalls == 0,
               Double(stream.durationMs) <= lowest.estimatedSeconds * 1000 {
                signals.append(.oneShortCall)
                suggested = lowest.name
            }
            if let feedback = stream.feedback, feedback.rating == .down, let expected = feedback.expectedLevel, expected != name,
               levels.contains(expected) {
                signals.append(.feedback)
                suggested = expected
                guessed = false
            }
            guard !signals.isEmpty, suggested != name else { return nil }
            return FlaggedChat(stream: stream, level: name, signals: signals, suggestedLevel: suggested, guessed: guessed)
        }
    }

    /// The flagged chats that kept their text, as cases of an evaluation set (`routing-eval.yaml`'s format): the
    /// suggested level, a tag per signal, and `needs-review` where the level is a guess. Chats without text are
    /// counted in `skipped` (the server keeps text only with `--record-queries`).
    public static func evaluationCases(_ flagged: [FlaggedChat]) -> (yaml: String, written: Int, skipped: Int) {
        var yaml = """
            # Misroutes found in the server's traffic (switchboard rules review --export): each chat's last user text,
            # labelled with the level the review suggests. Check every case tagged needs-review before tuning on it:
            # its level is a guess from how the chat went.
            version: 1
            cases:

            """
        var written = 0
        for chat in flagged {
            guard let text = chat.stream.queryText, !text.isEmpty else { continue }
            let tags = chat.signals.map(\.rawValue) + (chat.guessed ? ["needs-review"] : [])
            yaml += "  - { query: \(yamlQuoted(text)), level: \(chat.suggestedLevel), tags: [\(tags.joined(separator: ", "))] }"
                + "  # \(chat.stream.sessionId), ran at \(chat.level)\n"
            written += 1
        }
        return (yaml, written, flagged.count - written)
    }

    /// A YAML double-quoted scalar.
    static func yamlQuoted(_ text: String) -> String {
        var out = "\""
        for scalar in text.unicodeScalars {
            switch scalar {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            case _ where scalar.value < 0x20 || scalar.value == 0x7F: out += String(format: "\\x%02X", scalar.value)
            default: out.unicodeScalars.append(scalar)
            }
        }
        return out + "\""
    }

    /// A review window as people write it: `90s`, `30m`, `24h`, `7d` (a bare number is seconds); its length in
    /// milliseconds, `nil` when it is not one.
    public static func windowMilliseconds(_ text: String) -> Int64? {
        let units: [Character: Int64] = ["s": 1_000, "m": 60_000, "h": 3_600_000, "d": 86_400_000]
        var digits = Substring(text.trimmingCharacters(in: .whitespaces))
        var unit: Int64 = 1_000
        if let last = digits.last, let factor = units[last] {
            unit = factor
            digits = digits.dropLast()
        }
        guard let count = Int64(digits), count > 0, count <= 3_650 * 86_400_000 / unit else { return nil }
        return count * unit
    }

    private static func percentile90(_ values: [Int]) -> Int {
        let sorted = values.sorted()
        let index = Int((0.9 * Double(sorted.count)).rounded(.up)) - 1
        return sorted[min(max(index, 0), sorted.count - 1)]
    }
}
