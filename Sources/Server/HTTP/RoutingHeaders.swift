import HTTPTypes

extension HTTPField.Name {
    /// What smart routing chose, on `POST /mcp/chat` streams (exposed to other origins by CORS).
    static let switchboardComplexity = HTTPField.Name("X-Switchboard-Complexity")!
    static let switchboardRoute = HTTPField.Name("X-Switchboard-Route")!
    static let switchboardProvider = HTTPField.Name("X-Switchboard-Provider")!
    static let switchboardModel = HTTPField.Name("X-Switchboard-Model")!
    static let switchboardRulesVersion = HTTPField.Name("X-Switchboard-Rules-Version")!
    /// `stream` or `advise`: what the route did with the chat.
    static let switchboardAction = HTTPField.Name("X-Switchboard-Action")!
    /// Which instance answered (every answer; see `InstanceHeaderMiddleware`).
    static let switchboardInstance = HTTPField.Name("X-Switchboard-Instance")!
    /// The W3C trace id of a traced request.
    static let switchboardTraceId = HTTPField.Name("X-Switchboard-Trace-Id")!
    static let routingHeaders: [HTTPField.Name] = [.switchboardComplexity, .switchboardRoute, .switchboardProvider, .switchboardModel,
                                                   .switchboardRulesVersion, .switchboardAction, .switchboardInstance]
}
