/// A sentence-embedding model reduced to one vector per vocabulary token (the model2vec approach): every token was
/// passed through the transformer once when the model was derived (`scripts/derive-embeddings.py`), so embedding
/// a chat is its tokenization, a mean of its tokens' rows and a normalisation: microseconds, no matrix product.
///
/// The rows are int8 with a float scale per row (`SBE1`: `"SBE1"`, rows and dims as little-endian UInt32, the
/// rows' int8 values row by row, then each row's Float32 scale; the value is int8 × scale).
public final class StaticEmbeddings: Sendable {
    public let tokenizer: WordPieceTokenizer
    public let dimensions: Int
    private let rows: Int
    private let values: [Int8]
    private let scales: [Float]
    /// Where the model came from and what it is, for `GET /rules` and the analysis (`minilm-l6-v2-static`, …).
    public let name: String
    /// The model files' fingerprint: a classifier trained on it is valid for it only.
    public let fingerprint: String

    /// The most tokens of a text that count, as at derivation.
    public static let maxTokens = 512

    public enum LoadError: Error, Equatable, CustomStringConvertible {
        case notSBE1
        case truncated(expected: Int, found: Int)
        case vocabularyMismatch(tokens: Int, rows: Int)

        public var description: String {
            switch self {
            case .notSBE1: "embeddings.bin is not an SBE1 file"
            case .truncated(let expected, let found): "embeddings.bin holds \(found) bytes, its header says \(expected)"
            case .vocabularyMismatch(let tokens, let rows): "tokens.txt has \(tokens) tokens for \(rows) rows"
            }
        }
    }

    /// The model from its files' bytes: `embeddings` (SBE1) and `tokens` (tokens.txt's lines).
    public init(name: String, fingerprint: String, embeddings: [UInt8], tokens: [String]) throws(LoadError) {
        guard embeddings.count >= 12, embeddings[0..<4].elementsEqual("SBE1".utf8) else { throw .notSBE1 }
        func uint32(at offset: Int) -> Int {
            Int(embeddings[offset]) | Int(embeddings[offset + 1]) << 8 | Int(embeddings[offset + 2]) << 16 | Int(embeddings[offset + 3]) << 24
        }
        let rows = uint32(at: 4), dimensions = uint32(at: 8)
        guard rows > 0, dimensions > 0, rows <= 1 << 22, dimensions <= 4096 else { throw .notSBE1 }
        let expected = 12 + rows * dimensions + rows * 4
        guard embeddings.count == expected else { throw .truncated(expected: expected, found: embeddings.count) }
        guard tokens.count == rows else { throw .vocabularyMismatch(tokens: tokens.count, rows: rows) }
        let valueBytes = embeddings[12..<(12 + rows * dimensions)]
        values = valueBytes.map { Int8(bitPattern: $0) }
        var scales = [Float](repeating: 0, count: rows)
        let base = 12 + rows * dimensions
        for row in 0..<rows {
            let offset = base + row * 4
            let bits = UInt32(embeddings[offset]) | UInt32(embeddings[offset + 1]) << 8 | UInt32(embeddings[offset + 2]) << 16
                | UInt32(embeddings[offset + 3]) << 24
            let scale = Float(bitPattern: bits)
            scales[row] = scale.isFinite ? scale : 0
        }
        self.scales = scales
        self.rows = rows
        self.dimensions = dimensions
        self.tokenizer = WordPieceTokenizer(tokens: tokens)
        self.name = name
        self.fingerprint = fingerprint
    }

    /// The tokens of `text` that have a row (`[UNK]` and ids past the rows are left out), at most `maxTokens`.
    public func tokenIds(_ text: String) -> [Int32] {
        tokenizer.ids(text, limit: Self.maxTokens).filter { $0 != tokenizer.unknown && Int($0) < rows }
    }

    /// `text`'s embedding: the mean of its tokens' rows, of length 1; all zeros when no token has a row.
    public func embed(_ text: String) -> [Float] {
        embed(ids: tokenIds(text))
    }

    public func embed(ids: [Int32]) -> [Float] {
        var sum = [Float](repeating: 0, count: dimensions)
        guard !ids.isEmpty else { return sum }
        let dimensions = dimensions
        values.withUnsafeBufferPointer { values in
            sum.withUnsafeMutableBufferPointer { sum in
                for id in ids {
                    let row = Int(id)
                    let scale = scales[row]
                    let start = row * dimensions
                    for d in 0..<dimensions { sum[d] += Float(values[start + d]) * scale }
                }
            }
        }
        Vectors.normalize(&sum)
        return sum
    }
}

/// Dense vector helpers on contiguous Float storage.
public enum Vectors {
    /// Scales `vector` to length 1 (left as it is when it is all zeros).
    public static func normalize(_ vector: inout [Float]) {
        var squares: Float = 0
        for value in vector { squares += value * value }
        guard squares > 0, squares.isFinite else { return }
        let inverse = 1 / squares.squareRoot()
        for index in vector.indices { vector[index] *= inverse }
    }

    public static func dot(_ a: UnsafeBufferPointer<Float>, _ b: UnsafeBufferPointer<Float>) -> Float {
        guard let x = a.baseAddress, let y = b.baseAddress else { return 0 }
        return dot(x, y, count: min(a.count, b.count))
    }

    /// The dot product of `count` floats at `a` and `b`, eight lanes at a time (a float sum is not reordered by the
    /// optimiser on its own, so the lanes are written out: about 8 times the plain loop).
    @inline(__always)
    public static func dot(_ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>, count: Int) -> Float {
        var lanes = SIMD8<Float>()
        var lanes2 = SIMD8<Float>()
        var index = 0
        let x = UnsafeRawPointer(a), y = UnsafeRawPointer(b)
        while index + 16 <= count {
            lanes += x.loadUnaligned(fromByteOffset: index * 4, as: SIMD8<Float>.self) * y.loadUnaligned(fromByteOffset: index * 4, as: SIMD8<Float>.self)
            lanes2 += x.loadUnaligned(fromByteOffset: (index + 8) * 4, as: SIMD8<Float>.self)
                * y.loadUnaligned(fromByteOffset: (index + 8) * 4, as: SIMD8<Float>.self)
            index += 16
        }
        var sum = (lanes + lanes2).sum()
        while index < count {
            sum += a[index] * b[index]
            index += 1
        }
        return sum
    }
}
