import ChatCore
import Foundation
import Storage

/// Where a finished stream is booked: its metrics, its calibration record, and its slot in the quotas, given back
/// everywhere (its key's tokens were charged by each model call as it ended). Both kinds of stream book the same
/// way, before their body ends, so a client that sends its next chat the moment this one ends never meets it.
struct StreamBook {
    let sessionId: String
    let started: ContinuousClock.Instant
    let metrics: ServerMetrics
    let ticket: StreamTicket?
    let recorder: StreamRecorder?
    var shadow: ShadowRules? = nil

    func close(_ tally: StreamTally, _ outcome: StreamOutcome, elapsed: Duration) async {
        if let verdict = tally.labels.shadow {
            shadow?.book(verdict, sessionId: sessionId, text: tally.labels.queryText, costUSD: tally.usage?.costUSD, duration: elapsed)
        }
        metrics.streamClosed(outcome: outcome, errorCode: outcome == .clientGone ? nil : tally.errorCode, events: tally.events,
                             relayed: tally.relayed, duration: elapsed)
        recorder?.record(tally.record(sessionId: sessionId, outcome: outcome, duration: elapsed,
                                      firstText: tally.firstTextAt.map { $0 - started }))
        await ticket?.end()
    }
}

/// What a stream sent, for its log line, metrics and calibration record. Written only by the pipeline's task and
/// read after it has finished, so it needs no lock.
final class StreamTally: @unchecked Sendable {
    var events = 0
    /// Of the events, the model's written (or kept) where the upstream was read.
    var relayed = 0
    var last = "none"
    var errorCode: StreamErrorCode?
    /// The session's tokens, from its `complete` event.
    var usage: Usage?
    var labels: StreamLabels
    var iterations = 0
    var toolCalls = 0
    var firstTextAt: ContinuousClock.Instant?
    var stopReason: StopReason?

    init(labels: StreamLabels) {
        self.labels = labels
    }

    func count(_ event: StreamEvent, relayed: Bool = false) {
        events += 1
        if relayed { self.relayed += 1 }
        last = event.type
        switch event {
        case .error(let error): errorCode = error.code
        case .complete(let completion):
            usage = completion.usage
            stopReason = completion.stopReason
        case .textChunk: if firstTextAt == nil { firstTextAt = .now }
        case .iterationStart: iterations += 1
        case .toolDetected: toolCalls += 1
        case .routing(let decision):
            // A fallback moved the stream: it is booked under what answered.
            if let provider = decision.provider { labels.provider = provider }
            if let model = decision.model { labels.model = model }
        default: break
        }
    }

    func record(sessionId: String, outcome: StreamOutcome, duration: Duration, firstText: Duration?) -> StreamRecord {
        let usage = usage ?? Usage()
        return StreamRecord(
            sessionId: sessionId, finishedAt: Int64((Date().timeIntervalSince1970 * 1000).rounded()), level: labels.level,
            route: labels.route, provider: labels.provider, model: labels.model, durationMs: Int(duration.inMilliseconds),
            firstTextMs: firstText.map { Int($0.inMilliseconds) }, iterations: iterations, toolCalls: toolCalls,
            inputTokens: usage.inputTokens, outputTokens: usage.outputTokens, cacheReadTokens: usage.cacheReadTokens,
            cacheWriteTokens: usage.cacheWriteTokens, costUSD: usage.costUSD, outcome: outcome.rawValue,
            errorCode: errorCode?.rawValue, owner: labels.owner, analysis: labels.analysis, stopReason: stopReason?.rawValue,
            queryText: labels.queryText)
    }
}
