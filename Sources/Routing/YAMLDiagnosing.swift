import ChatCore
import Yams

/// A parser of a YAML file that reports every problem as a `Diagnostic` with the file's line and column, and
/// reads typed values through the same checks: the rules file, the routing evaluation set and the API keys
/// file share it.
public protocol YAMLDiagnosing {
    var path: String { get }
    var diagnostics: [Diagnostic] { get set }
}

extension YAMLDiagnosing {
    /// The YAML's root node; `nil` (with a diagnostic) when it is empty or not YAML.
    public mutating func compose(_ yaml: String, expected: String) -> Node? {
        do {
            guard let node = try Yams.compose(yaml: yaml) else {
                error("the file is empty; expected \(expected)", at: nil)
                return nil
            }
            return node
        } catch let yamlError as YamlError {
            report(yamlError)
            return nil
        } catch {
            self.error("cannot read YAML: \(error)", at: nil)
            return nil
        }
    }

    /// The top level of a file that must say `version: 1` and list its entries under `listKey`: the root and
    /// the list, with unknown top-level keys and a wrong or missing version reported; `nil` when there is no list.
    /// `otherKeys`: further top-level keys the file may have.
    public mutating func versionOneList(_ yaml: String, listKey: String, what: String, otherKeys: [String] = [])
        -> (root: Node, items: [Node])? {
        guard let root = compose(yaml, expected: "a mapping with version and \(listKey)"), let top = mapping(root, "the top level")
        else { return nil }
        checkKeys(top, allowed: ["version", listKey] + otherKeys, context: "top level")
        if let node = top["version"] {
            if let value = integer(node, "version"), value != 1 { error("unsupported version \(value); expected 1", at: node) }
        } else {
            error("missing \"version: 1\" at the top level", at: root)
        }
        guard let listNode = top[listKey] else {
            error("missing \"\(listKey)\": \(what)", at: root)
            return nil
        }
        guard let items = sequence(listNode, listKey) else { return nil }
        return (root, items)
    }

    /// Where `node` stands in the file.
    public func location(_ node: Node) -> SourceLocation {
        SourceLocation(line: node.mark?.line ?? 0, column: node.mark?.column ?? 0)
    }

    public mutating func checkKeys(_ map: Node.Mapping, allowed: [String], context: String) {
        for key in map.keys {
            let name = key.string ?? ""
            if !allowed.contains(name) {
                error("\(context): unknown key \"\(name)\"" + Suggestion.didYouMean(name, in: allowed), at: key)
            }
        }
    }

    public mutating func mapping(_ node: Node, _ what: String) -> Node.Mapping? {
        if let map = node.mapping { return map }
        error("\(what): expected a mapping (key: value), found \(describe(node))", at: node)
        return nil
    }

    /// The entries of a mapping of named entries (`providers:`, `routes:`): each name, where it is written, and its
    /// fields, their keys checked against `allowed`; `kind` names an entry in messages (`route "fast"`). An entry
    /// that is not a mapping is reported and left out.
    public mutating func namedEntries(_ map: Node.Mapping, kind: String, allowed: [String])
        -> [(name: String, at: Node, fields: Node.Mapping, context: String)] {
        var entries: [(name: String, at: Node, fields: Node.Mapping, context: String)] = []
        for (keyNode, value) in map {
            let context = "\(kind) \"\(keyNode.string ?? "")\""
            guard let name = keyNode.string, let fields = mapping(value, context) else { continue }
            checkKeys(fields, allowed: allowed, context: context)
            entries.append((name, keyNode, fields, context))
        }
        return entries
    }

    /// The required `key` of `fields`, one of `Value`'s cases: a missing key is reported at `entry`, an unknown
    /// value where it is written, with the nearest case suggested.
    public mutating func requiredCase<Value: RawRepresentable & CaseIterable>(_ key: String, of fields: Node.Mapping, at entry: Node,
                                                                          context: String) -> Value?
        where Value.RawValue == String {
        let names = Value.allCases.map(\.rawValue)
        let choices = names.dropLast().joined(separator: ", ") + (names.count > 1 ? " or " : "") + (names.last ?? "")
        guard let node = fields[key] else {
            error("\(context): missing \"\(key)\" (\(choices))", at: entry)
            return nil
        }
        guard let value = node.string.flatMap(Value.init(rawValue:)) else {
            error("\(context): unknown \(key) \"\(node.string ?? "")\"; expected \(choices)"
                  + Suggestion.didYouMean(node.string ?? "", in: names), at: node)
            return nil
        }
        return value
    }

    public mutating func sequence(_ node: Node, _ what: String) -> [Node]? {
        if let items = node.sequence { return Array(items) }
        error("\(what): expected a list, found \(describe(node))", at: node)
        return nil
    }

    public mutating func string(_ node: Node, _ what: String) -> String? {
        if case .scalar(let scalar) = node, node.null == nil || scalar.style != .plain { return scalar.string }
        error("\(what): expected text, found \(describe(node))", at: node)
        return nil
    }

    public mutating func boolean(_ node: Node, _ what: String) -> Bool? {
        if case .scalar(let scalar) = node, scalar.style == .plain, let value = node.bool { return value }
        error("\(what): expected true or false, found \(describe(node))", at: node)
        return nil
    }

    public mutating func integer(_ node: Node, _ what: String, minimum: Int? = nil) -> Int? {
        guard case .scalar = node, let value = node.int else {
            error("\(what): expected a whole number, found \(describe(node))", at: node)
            return nil
        }
        if let minimum, value < minimum {
            error("\(what): must be at least \(minimum), found \(value)", at: node)
            return nil
        }
        return value
    }

    public mutating func number(_ node: Node, _ what: String, minimum: Double? = nil) -> Double? {
        guard case .scalar = node, let value = node.int.map(Double.init) ?? node.float, value.isFinite else {
            error("\(what): expected a number, found \(describe(node))", at: node)
            return nil
        }
        if let minimum, value < minimum {
            error("\(what): must be at least \(minimum.compactText), found \(value.compactText)", at: node)
            return nil
        }
        return value
    }

    public func describe(_ node: Node) -> String {
        switch node {
        case .mapping: return "a mapping"
        case .sequence: return "a list"
        case .alias: return "an alias"
        case .scalar(let scalar):
            if node.null != nil, scalar.style == .plain { return "nothing" }
            return "\"\(scalar.string)\""
        }
    }

    public mutating func error(_ message: String, at node: Node?) {
        diagnostics.append(Diagnostic(.error, message, path: path, line: node?.mark?.line ?? 0, column: node?.mark?.column ?? 0))
    }

    public mutating func warning(_ message: String, at node: Node?) {
        diagnostics.append(Diagnostic(.warning, message, path: path, line: node?.mark?.line ?? 0, column: node?.mark?.column ?? 0))
    }

    public mutating func report(_ yamlError: YamlError) {
        switch yamlError {
        case .scanner(let context, let problem, let mark, _),
             .parser(let context, let problem, let mark, _),
             .composer(let context, let problem, let mark, _):
            let detail = context.map { "\($0.text) at \($0.mark.line):\($0.mark.column): " } ?? ""
            diagnostics.append(Diagnostic(.error, "invalid YAML: \(detail)\(problem)", path: path,
                                          line: mark.line, column: mark.column))
        case .duplicatedKeysInMapping(let duplicates, let context):
            diagnostics.append(Diagnostic(.error, "duplicate key \(duplicates.sorted().map { "\"\($0)\"" }.joined(separator: ", ")) \(context.text)",
                                          path: path, line: context.mark.line, column: context.mark.column))
        default:
            diagnostics.append(Diagnostic(.error, "invalid YAML: \(yamlError)", path: path))
        }
    }
}
