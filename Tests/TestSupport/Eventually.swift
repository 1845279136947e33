/// Polls `condition` every `interval` until it holds or `limit` passes; whether it held. The one way tests wait
/// for something another task or process does.
@discardableResult
public func eventually(within limit: Duration = .seconds(15), every interval: Duration = .milliseconds(5),
                       _ condition: () async throws -> Bool) async rethrows -> Bool {
    let deadline = ContinuousClock.now + limit
    while ContinuousClock.now < deadline {
        if try await condition() { return true }
        try? await Task.sleep(for: interval)
    }
    return try await condition()
}
