#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Whether a host is this machine's loopback: an IPv4 address in 127.0.0.0/8 or the IPv6 address ::1 (bracketed
/// or not), as the address parser reads them, or the name `localhost` (which RFC 6761 reserves for loopback).
/// A name that merely starts like one (`127.corp.example`) is not.
public enum Loopback {
    public static func isLoopback(host: String) -> Bool {
        var host = host.lowercased()
        if host == "localhost" { return true }
        if host.hasPrefix("["), host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
        var v4 = in_addr()
        if inet_pton(AF_INET, host, &v4) == 1 {
            return UInt32(bigEndian: v4.s_addr) >> 24 == 127
        }
        var v6 = in6_addr()
        if inet_pton(AF_INET6, host, &v6) == 1 {
            return withUnsafeBytes(of: &v6) { bytes in bytes.dropLast().allSatisfy { $0 == 0 } && bytes.last == 1 }
        }
        return false
    }
}
