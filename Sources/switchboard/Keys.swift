import ArgumentParser
import Foundation
import ConfigFiles
import Server

struct Keys: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Make and check API keys.",
        subcommands: [New.self, Check.self, Revoke.self]
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

    /// The keys file's text; an unreadable file is printed compiler-style and exits 1.
    static func read(_ path: String) throws -> String {
        switch ConfigFile.read(path) {
        case .success(let file): return file.text
        case .failure(let unreadable):
            print(unreadable.diagnostic.description)
            throw ExitCode(1)
        }
    }

    struct Check: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Print every problem in an API keys file, compiler-style; exit 1 on errors.")

        @Argument(help: "The keys file.")
        var path: String

        func run() async throws {
            let yaml = try Keys.read(path)
            let (keys, diagnostics) = APIKeysFile.load(yaml: yaml, path: path)
            for diagnostic in diagnostics { print(diagnostic.description) }
            guard let keys else { throw ExitCode(1) }
            let admins = keys.keys.filter(\.admin).count
            print("\(path): ok, \(keys.keys.count) key\(keys.keys.count == 1 ? "" : "s") (\(admins) admin)")
        }
    }

    struct Revoke: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Revoke a key at once: adds its id to the keys file's revoked list, which a running server "
                + "reloads within its poll interval (SWITCHBOARD_RULES_POLL_MS, 250 ms by default).")

        @Argument(help: "The id of the key to revoke.")
        var id: String

        @Option(name: .customLong("api-keys"), help: "The keys file the server reads (--api-keys).")
        var path: String

        func run() async throws {
            let yaml = try Keys.read(path)
            guard let revoked = KeysFileEdit.revoking(id, in: yaml) else {
                print("\(path): \(id) is revoked already")
                return
            }
            let (keys, diagnostics) = APIKeysFile.load(yaml: revoked, path: path)
            guard keys != nil else {
                for diagnostic in diagnostics { print(diagnostic.description) }
                print("\(path) was left as it was: fix it first (switchboard keys check \(path))")
                throw ExitCode(1)
            }
            // Written whole and renamed over the file, so a server never reads half of it.
            let temporary = path + ".revoking-\(ProcessInfo.processInfo.processIdentifier)"
            try Data(revoked.utf8).write(to: URL(fileURLWithPath: temporary))
            if let attributes = try? FileManager.default.attributesOfItem(atPath: path),
               let permissions = attributes[.posixPermissions] {
                try? FileManager.default.setAttributes([.posixPermissions: permissions], ofItemAtPath: temporary)
            }
            guard rename(temporary, path) == 0 else {
                try? FileManager.default.removeItem(atPath: temporary)
                print("\(path) could not be replaced (errno \(errno))")
                throw ExitCode(1)
            }
            print("\(path): \(id) revoked; a server reading this file refuses it within its poll interval")
        }
    }
}

/// The keys file with one more id in its `revoked:` list, the rest of its text (comments included) unchanged;
/// `nil` when the id is revoked already.
enum KeysFileEdit {
    static func revoking(_ id: String, in yaml: String) -> String? {
        var lines = yaml.components(separatedBy: "\n")
        let quoted = id.allSatisfy({ $0.isLetter || $0.isNumber || "-_.".contains($0) }) ? id : "\"\(id)\""
        guard let index = lines.firstIndex(where: { $0.hasPrefix("revoked:") }) else {
            if lines.last == "" { lines.removeLast() }
            return (lines + ["revoked: [\(quoted)]", ""]).joined(separator: "\n")
        }
        let line = lines[index]
        if let open = line.firstIndex(of: "["), let close = line.lastIndex(of: "]"), open < close {
            let items = line[line.index(after: open)..<close].split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }
            if items.contains(id) || items.contains("\"\(id)\"") { return nil }
            lines[index] = "revoked: [" + (items.filter { !$0.isEmpty } + [quoted]).joined(separator: ", ") + "]" + line[line.index(after: close)...]
        } else {
            // A block list: its items follow, indented.
            var end = index + 1
            while end < lines.count, lines[end].hasPrefix(" ") || lines[end].hasPrefix("-") {
                let item = lines[end].trimmingCharacters(in: .whitespaces)
                if item == "- \(id)" || item == "- \"\(id)\"" { return nil }
                end += 1
            }
            lines.insert("  - \(quoted)", at: end)
        }
        return lines.joined(separator: "\n")
    }
}
