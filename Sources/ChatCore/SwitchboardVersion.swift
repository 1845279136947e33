/// Switchboard's version, as the MCP handshakes and `--version` report it.
public enum SwitchboardVersion {
    public static let current = "0.2.0"
}
