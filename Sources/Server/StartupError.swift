/// Why the server could not start, said in a way an operator can act on.
public struct StartupError: Error, CustomStringConvertible {
    public let description: String
}
