import Foundation
#if canImport(Glibc)
import Glibc
#endif
import Hummingbird
import HummingbirdTesting
import Logging
import Server
import TestSupport

/// A temporary directory holding a rules file, removed at the end of the test.
struct TemporaryRules {
    let directory: URL
    let path: String

    init(_ yaml: String) throws {
        directory = FileManager.default.temporaryDirectory.appendingPathComponent("switchboard-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        path = directory.appendingPathComponent("rules.yaml").path
        try write(yaml)
    }

    /// Replaces the file the way editors do: write a new file, then rename it over the old one.
    func write(_ yaml: String) throws {
        let temporary = directory.appendingPathComponent(".rules.yaml.\(UUID().uuidString)")
        try Data(yaml.utf8).write(to: temporary)
        guard rename(temporary.path, path) == 0 else { throw CocoaError(.fileWriteUnknown) }
    }

    func remove() {
        try? FileManager.default.removeItem(at: directory)
    }
}

/// Rules whose one rule gives `weight` for the word "chart", so two versions are told apart by their scores.
func chartRules(weight: Int, history: Int = 0) -> String {
    rulesFile(analyze: "{ history: \(history) }", levels: twoLevels(), routes: twoRoutes(), rules: """
      - { id: charts, description: charts take long, weight: \(weight), when: { any_keywords: [chart, graph] } }
      - { id: compare, weight: 1, when: { regex: '\\bcompare\\b' } }
    """)
}

func configuration(rules path: String?, maxBodyBytes: Int = 1 << 20) -> ServerConfiguration {
    var configuration = ServerConfiguration()
    configuration.host = "127.0.0.1"
    configuration.port = 0
    configuration.rulesPath = path
    configuration.maxBodyBytes = maxBodyBytes
    configuration.rulesPollInterval = .milliseconds(50)
    configuration.logLevel = .critical
    configuration.database = .memory
    return configuration
}

func json(_ buffer: ByteBuffer) throws -> [String: Any] {
    let object = try JSONSerialization.jsonObject(with: Data(buffer.readableBytesView))
    guard let dictionary = object as? [String: Any] else { throw CocoaError(.coderReadCorrupt) }
    return dictionary
}

func chatBody(_ text: String) -> ByteBuffer {
    let data = try! JSONSerialization.data(withJSONObject: ["messages": [["role": "user", "content": text]]])
    return ByteBuffer(bytes: data)
}

/// The header every POST needs: the server refuses bodies that are not JSON.
let jsonHeaders: HTTPFields = [.contentType: "application/json"]
