import ChatCore

/// Checks a tool's input against its JSON Schema: the subset tools use here (object properties, `required`,
/// `additionalProperties: false`, types, `enum`, numeric bounds, string length, array items).
///
/// Messages are written for the model, which reads them and corrects its call: they name the field, what
/// was expected and what came.
public enum SchemaValidator {
    public static func problems(in value: JSONValue, schema: JSONValue, path: String = "input") -> [String] {
        var problems: [String] = []
        check(value, schema, path, &problems)
        return problems
    }

    private static func check(_ value: JSONValue, _ schema: JSONValue, _ path: String, _ problems: inout [String]) {
        if let allowed = schema["enum"], case .array(let options) = allowed, !options.contains(value) {
            let list = options.map(\.briefDescription).joined(separator: ", ")
            problems.append("\(path): must be one of \(list), got \(value.briefDescription)")
            return
        }
        guard let type = schema["type"]?.stringValue else { return }
        switch (type, value) {
        case ("object", .object(let fields)):
            let properties: [String: JSONValue]
            if case .object(let declared)? = schema["properties"] { properties = declared } else { properties = [:] }
            if case .array(let required)? = schema["required"] {
                for name in required.compactMap(\.stringValue) where fields[name] == nil || fields[name] == .null {
                    problems.append("\(path).\(name): required")
                }
            }
            for (name, fieldValue) in fields.sorted(by: { $0.key < $1.key }) {
                if let fieldSchema = properties[name] {
                    if fieldValue != .null { check(fieldValue, fieldSchema, "\(path).\(name)", &problems) }
                } else if schema["additionalProperties"] == .bool(false) {
                    let known = properties.keys.sorted().joined(separator: ", ")
                    problems.append("\(path).\(name): unknown field; known fields: \(known)")
                }
            }
        case ("array", .array(let items)):
            if let itemSchema = schema["items"] {
                for (index, item) in items.enumerated() { check(item, itemSchema, "\(path)[\(index)]", &problems) }
            }
            if let maxItems = schema["maxItems"]?.intValue, items.count > maxItems {
                problems.append("\(path): at most \(maxItems) items, got \(items.count)")
            }
        case ("string", .string(let text)):
            if let minLength = schema["minLength"]?.intValue, text.count < minLength {
                problems.append("\(path): at least \(minLength) characters")
            }
            if let maxLength = schema["maxLength"]?.intValue, text.count > maxLength {
                problems.append("\(path): at most \(maxLength) characters")
            }
            if schema["format"]?.stringValue == "date", !isDate(text) {
                problems.append("\(path): expected a date as YYYY-MM-DD, got \(value.briefDescription)")
            }
        case ("integer", .number(let number)) where number.rounded() == number,
             ("number", .number(let number)):
            if case .number(let minimum)? = schema["minimum"], number < minimum {
                problems.append("\(path): must be at least \(minimum.compactText), got \(number.compactText)")
            }
            if case .number(let maximum)? = schema["maximum"], number > maximum {
                problems.append("\(path): must be at most \(maximum.compactText), got \(number.compactText)")
            }
        case ("boolean", .bool):
            break
        default:
            let expected = type == "integer" ? "a whole number" : (type == "object" ? "an object" : (type == "array" ? "an array" : "a \(type)"))
            problems.append("\(path): expected \(expected), got \(value.briefDescription)")
        }
    }

    static func isDate(_ text: String) -> Bool {
        let parts = text.split(separator: "-", omittingEmptySubsequences: false)
        guard parts.count == 3, parts[0].count == 4, parts[1].count == 2, parts[2].count == 2,
              let year = Int(parts[0]), let month = Int(parts[1]), let day = Int(parts[2]) else { return false }
        return year >= 1900 && (1...12).contains(month) && (1...31).contains(day)
    }

}
