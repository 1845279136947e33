import ChatCore

/// What one model turn keeps, counted against its caps, the same for every provider: a model that runs away (or a
/// hostile upstream) cannot grow a turn without bound. Past a cap the call ends with `upstream_protocol_error`,
/// not retried.
struct TurnSize {
    static let maxTextBytes = 4 << 20
    static let maxToolInputBytes = 1 << 20
    /// Everything else a turn keeps: thinking signatures, citations, the blocks' start objects, tool ids and names.
    static let maxOtherBytes = 1 << 20

    enum Part {
        /// Text and thinking.
        case text
        case toolInput
        case other
    }

    private var text = 0
    private var toolInput = 0
    private var other = 0

    /// Counts `bytes` more of `part`.
    mutating func add(_ bytes: Int, to part: Part) throws(StreamError) {
        let (total, cap, what): (Int, Int, String)
        switch part {
        case .text:
            text += bytes
            (total, cap, what) = (text, Self.maxTextBytes, "of text")
        case .toolInput:
            toolInput += bytes
            (total, cap, what) = (toolInput, Self.maxToolInputBytes, "of tool input")
        case .other:
            other += bytes
            (total, cap, what) = (other, Self.maxOtherBytes, "of signatures, citations, block data, tool ids and names")
        }
        guard total <= cap else {
            throw StreamError(code: .upstreamProtocolError, message: "The model's answer passed \(cap >> 20) MiB \(what) in one turn.",
                              retryable: false)
        }
    }
}
