import ChatCore
import Storage

/// The body of `POST /mcp/chat/feedback`: `{"sessionId", "rating": "up"|"down", "expectedLevel"?, "comment"?}`, every
/// problem a 400 naming its field.
struct FeedbackRequest {
    static let commentLimit = 1000

    let sessionId: String
    let feedback: StreamFeedback

    /// `levels`: the rules' levels, which `expectedLevel` must name.
    init(json body: some Collection<UInt8>, levels: [String]) throws(APIError) {
        func refuse(_ field: String, _ message: String) -> APIError {
            APIError(.badRequest, code: .invalidRequest, message: message, field: field)
        }
        let value: JSONValue
        do {
            value = try JSONValue(parsing: String(decoding: Array(body), as: UTF8.self))
        } catch {
            throw refuse("body", "the body is not valid JSON: \(error)")
        }
        guard case .object(let fields) = value else { throw refuse("body", "expected a JSON object, found \(value.typeName)") }
        guard let id = fields["sessionId"]?.stringValue, !id.isEmpty, id.utf8.count <= 200 else {
            throw refuse("sessionId", "required: the sessionId of session_start (a string of at most 200 bytes)")
        }
        guard let word = fields["rating"]?.stringValue, let rating = StreamFeedback.Rating(rawValue: word) else {
            throw refuse("rating", "required: \"up\" or \"down\"")
        }
        var expected: String?
        switch fields["expectedLevel"] {
        case nil, .null?: break
        case .string(let level)? where levels.contains(level): expected = level
        case let other?:
            throw refuse("expectedLevel", "expected one of the levels \(levels.joined(separator: ", ")), found \(other.briefDescription)")
        }
        var comment: String?
        switch fields["comment"] {
        case nil, .null?: break
        case .string(let text)? where text.unicodeScalars.count <= Self.commentLimit: comment = text
        case .string?: throw refuse("comment", "at most \(Self.commentLimit) characters")
        case let other?: throw refuse("comment", "expected a string, found \(other.typeName)")
        }
        sessionId = id
        feedback = StreamFeedback(rating: rating, expectedLevel: expected, comment: comment)
    }
}
