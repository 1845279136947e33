import Foundation

/// The project's documentation, read by tests that keep the docs and the code saying the same thing.
public enum ProjectDocs {
    /// The project's root folder.
    public static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("../..").standardized

    /// The text of `Docs/NAME`.
    public static func text(_ name: String) throws -> String {
        try String(contentsOf: root.appendingPathComponent("Docs").appendingPathComponent(name), encoding: .utf8)
    }

    /// The back-quoted values of column `column` (0-based) in the first Markdown table after the line
    /// `heading`, in order: for `| 400 | \`invalid_request\` | …`, column 1 gives `invalid_request`.
    public static func tableColumn(_ name: String, after heading: String, column: Int) throws -> [String] {
        let lines = try text(name).components(separatedBy: "\n")
        guard let start = lines.firstIndex(of: heading) else { return [] }
        var values: [String] = []
        var inTable = false
        for line in lines[(start + 1)...] {
            guard line.hasPrefix("|") else {
                if inTable { break } else { continue }
            }
            inTable = true
            let cells = line.split(separator: "|", omittingEmptySubsequences: false).dropFirst().map {
                $0.trimmingCharacters(in: .whitespaces)
            }
            guard column < cells.count else { continue }
            let cell = cells[column]
            if cell.hasPrefix("`"), cell.hasSuffix("`"), cell.count > 2 { values.append(String(cell.dropFirst().dropLast())) }
        }
        return values
    }
}
