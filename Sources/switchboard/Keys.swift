import ArgumentParser
import Foundation
import RulesFiles
import Server

struct Keys: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Make and check API keys.",
        subcommands: [New.self, Check.self]
    )

    struct New: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Print a fresh random key once, and the entry for the keys file (which stores only its SHA-256).")

        @Argument(help: "The key's id, shown in logs and metrics (for example web-frontend).")
        var name: String

        @Flag(help: "May read /rules, /tools and /metrics.")
        var admin = false

        func validate() throws {
            guard !name.isEmpty, name.unicodeScalars.allSatisfy({ CharacterSet.alphanumerics.contains($0) || "-_.".unicodeScalars.contains($0) })
            else {
                throw ValidationError("Name the key with letters, digits, '-', '_' or '.', for example: switchboard keys new web-frontend")
            }
        }

        func run() async throws {
            let key = APIKey.generate()
            let digest = APIKey.digest(of: key).map { String(format: "%02x", $0) }.joined()
            print("""
                key (shown once; give it to the client, keep it out of files and logs):
                  \(key)

                entry for the keys file (--api-keys FILE):
                  - id: \(name)
                    sha256: \(digest)\(admin ? "\n    admin: true" : "")
                    # routes: [fast, standard]
                    # models: [claude-haiku-4-5]
                    # limits: { concurrent_streams: 4, requests_per_minute: 60, output_tokens_per_day: 200000, max_tokens: 4096 }
                """)
        }
    }

    struct Check: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Print every problem in an API keys file, compiler-style; exit 1 on errors.")

        @Argument(help: "The keys file.")
        var path: String

        func run() async throws {
            let yaml: String
            switch RulesFile.read(path) {
            case .success(let (text, _)): yaml = text
            case .failure(let unreadable):
                print(unreadable.diagnostic.description)
                throw ExitCode(1)
            }
            let (keys, diagnostics) = APIKeysFile.load(yaml: yaml, path: path)
            for diagnostic in diagnostics { print(diagnostic.description) }
            guard let keys else { throw ExitCode(1) }
            let admins = keys.keys.filter(\.admin).count
            print("\(path): ok, \(keys.keys.count) key\(keys.keys.count == 1 ? "" : "s") (\(admins) admin)")
        }
    }
}
