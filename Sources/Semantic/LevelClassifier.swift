import Foundation

/// A labelled chat the classifier learns from: its text (as the analyzer reads it), its level, and where it was
/// written (`routing-eval.yaml:120`), for the explanation.
public struct LabelledText: Sendable, Hashable {
    public var text: String
    public var level: String
    public var source: String

    public init(text: String, level: String, source: String) {
        self.text = text
        self.level = level
        self.source = source
    }
}

/// What the classifier made of one chat: a probability per level, and the labelled examples nearest to it.
public struct SemanticVerdict: Sendable, Hashable {
    /// In the classifier's level order.
    public var probabilities: [(level: String, probability: Double)]
    public var nearest: [Neighbour]

    public struct Neighbour: Sendable, Hashable {
        public var text: String
        public var level: String
        public var similarity: Double
        public var source: String
    }

    /// The most probable level and its probability.
    public var top: (level: String, probability: Double) {
        probabilities.max { $0.probability < $1.probability } ?? ("", 0)
    }

    public static func == (lhs: SemanticVerdict, rhs: SemanticVerdict) -> Bool {
        lhs.probabilities.map(\.level) == rhs.probabilities.map(\.level)
            && lhs.probabilities.map(\.probability) == rhs.probabilities.map(\.probability) && lhs.nearest == rhs.nearest
    }

    public func hash(into hasher: inout Hasher) {
        for (level, probability) in probabilities {
            hasher.combine(level)
            hasher.combine(probability)
        }
        hasher.combine(nearest)
    }
}

/// Multinomial logistic regression over standardised sentence embeddings (mean cross-entropy plus
/// `regularization`/2 · ‖W‖², the bias not penalised), trained by L-BFGS from zero, so the same examples give the
/// same model on every machine; and the examples themselves, for the nearest ones.
public final class LevelClassifier: Sendable {
    public let levels: [String]
    public let dimensions: Int
    /// levels × dimensions, row by row: the weights learned on standardised features with the standardisation
    /// folded in, and the bias likewise.
    private let foldedWeights: [Float]
    private let foldedBias: [Float]
    /// The examples' embeddings (unit length), one after another, for the nearest ones.
    private let exampleVectors: [Float]
    private let examples: [LabelledText]
    /// How the training went, for `rules check` and the benchmarks.
    public let training: Training

    public struct Training: Sendable, Hashable {
        public var examples: Int
        public var iterations: Int
        public var loss: Double
        /// Of the examples, those the trained model puts at their own level.
        public var trainingAccuracy: Double
    }

    /// Trains on `examples`, each embedded with `embed`; `levels` in their order (a level without examples gets
    /// none of the probability the data cannot give it).
    public init(examples: [LabelledText], levels: [String], regularization: Double = 0.01, maxIterations: Int = 200,
                embed: (String) -> [Float]) {
        self.levels = levels
        let vectors = examples.map { embed($0.text) }
        let dimensions = vectors.first?.count ?? 0
        self.dimensions = dimensions
        let levelIndex = Dictionary(levels.enumerated().map { ($1, $0) }, uniquingKeysWith: { first, _ in first })
        let labelled: [(example: LabelledText, vector: [Float], level: Int)] = zip(examples, vectors).compactMap { example, vector in
            guard vector.count == dimensions, let level = levelIndex[example.level] else { return nil }
            return (example, vector, level)
        }
        self.examples = labelled.map(\.example)
        let n = labelled.count, d = dimensions, k = levels.count
        var flat = [Float](repeating: 0, count: n * d)
        for (row, item) in labelled.enumerated() {
            for column in 0..<d { flat[row * d + column] = item.vector[column] }
        }
        exampleVectors = flat
        // Standardise each dimension (mean 0, deviation 1 over the examples).
        var mean = [Float](repeating: 0, count: d)
        var deviation = [Float](repeating: 0, count: d)
        if n > 0 {
            for row in 0..<n { for column in 0..<d { mean[column] += flat[row * d + column] } }
            for column in 0..<d { mean[column] /= Float(n) }
            for row in 0..<n { for column in 0..<d { let x = flat[row * d + column] - mean[column]; deviation[column] += x * x } }
        }
        let inverse = deviation.map { $0 > 0 && n > 1 ? 1 / ($0 / Float(n)).squareRoot() : 0 }
        var features = [Double](repeating: 0, count: n * d)
        for row in 0..<n { for column in 0..<d { features[row * d + column] = Double((flat[row * d + column] - mean[column]) * inverse[column]) } }
        let targets = labelled.map(\.level)
        let fit = SoftmaxRegression.fit(features: features, targets: targets, samples: n, dimensions: d, classes: k,
                                        regularization: regularization, maxIterations: maxIterations)
        // w·((x − mean) ⊙ inverse) + b = (w ⊙ inverse)·x + (b − (w ⊙ inverse)·mean)
        var folded = [Float](repeating: 0, count: k * d)
        var foldedBias = [Float](repeating: 0, count: k)
        for c in 0..<k {
            var shift: Double = 0
            for column in 0..<d {
                let w = fit.weights[c * d + column] * Double(inverse[column])
                folded[c * d + column] = Float(w)
                shift += w * Double(mean[column])
            }
            foldedBias[c] = Float(fit.bias[c] - shift)
        }
        self.foldedWeights = folded
        self.foldedBias = foldedBias
        var correct = 0
        for row in 0..<n {
            var best = 0
            var bestScore = -Double.infinity
            for c in 0..<k {
                var score = fit.bias[c]
                for column in 0..<d { score += fit.weights[c * d + column] * features[row * d + column] }
                if score > bestScore { bestScore = score; best = c }
            }
            if best == targets[row] { correct += 1 }
        }
        training = Training(examples: n, iterations: fit.iterations, loss: fit.loss, trainingAccuracy: n == 0 ? 0 : Double(correct) / Double(n))
    }

    /// The verdict on an embedding (unit length, from the same model): each level's probability, and the
    /// `neighbours` nearest examples by cosine similarity.
    public func verdict(_ embedding: [Float], neighbours: Int) -> SemanticVerdict {
        let d = dimensions, k = levels.count
        guard embedding.count == d, k > 0 else { return SemanticVerdict(probabilities: [], nearest: []) }
        // The standardisation is folded into the weights at training: one dot product per level.
        var scores = [Float](repeating: 0, count: k)
        foldedWeights.withUnsafeBufferPointer { weights in
            embedding.withUnsafeBufferPointer { x in
                for c in 0..<k { scores[c] = foldedBias[c] + Vectors.dot(weights.baseAddress! + c * d, x.baseAddress!, count: d) }
            }
        }
        let top = scores.max() ?? 0
        let exponentials = scores.map { Double(($0 - top)).exponential }
        let total = exponentials.reduce(0, +)
        let probabilities = zip(levels, exponentials).map { ($0, total > 0 ? $1 / total : 1 / Double(k)) }
        return SemanticVerdict(probabilities: probabilities, nearest: nearest(embedding, count: neighbours))
    }

    /// The `count` examples most similar to `embedding`, most similar first.
    public func nearest(_ embedding: [Float], count: Int) -> [SemanticVerdict.Neighbour] {
        let d = dimensions
        guard count > 0, embedding.count == d, !examples.isEmpty else { return [] }
        var best: [(similarity: Float, index: Int)] = []
        best.reserveCapacity(count + 1)
        exampleVectors.withUnsafeBufferPointer { vectors in
            embedding.withUnsafeBufferPointer { query in
                for index in examples.indices {
                    let similarity = Vectors.dot(vectors.baseAddress! + index * d, query.baseAddress!, count: d)
                    guard best.count < count || similarity > best[best.count - 1].similarity else { continue }
                    let place = best.firstIndex { $0.similarity < similarity } ?? best.count
                    best.insert((similarity, index), at: place)
                    if best.count > count { best.removeLast() }
                }
            }
        }
        return best.map { found in
            let example = examples[found.index]
            return SemanticVerdict.Neighbour(text: example.text, level: example.level, similarity: Double(found.similarity), source: example.source)
        }
    }
}

private extension Double {
    var exponential: Double { Foundation.exp(self) }
}

/// Softmax regression fitted by L-BFGS (memory 8) with a backtracking line search.
enum SoftmaxRegression {
    struct Fit {
        var weights: [Double]
        var bias: [Double]
        var iterations: Int
        var loss: Double
    }

    static func fit(features x: [Double], targets: [Int], samples n: Int, dimensions d: Int, classes k: Int,
                    regularization lambda: Double, maxIterations: Int) -> Fit {
        let parameters = k * d + k
        guard n > 0, k > 0 else { return Fit(weights: [Double](repeating: 0, count: k * d), bias: [Double](repeating: 0, count: k), iterations: 0, loss: 0) }
        var probabilities = [Double](repeating: 0, count: n * k)

        /// The loss and its gradient at `theta`.
        func evaluate(_ theta: [Double], gradient: inout [Double]) -> Double {
            for index in 0..<parameters { gradient[index] = 0 }
            var loss = 0.0
            theta.withUnsafeBufferPointer { theta in
                x.withUnsafeBufferPointer { x in
                    probabilities.withUnsafeMutableBufferPointer { p in
                        for row in 0..<n {
                            let features = row * d
                            var top = -Double.infinity
                            for c in 0..<k {
                                var score = theta[k * d + c]
                                let weights = c * d
                                for column in 0..<d { score += theta[weights + column] * x[features + column] }
                                p[row * k + c] = score
                                top = max(top, score)
                            }
                            var total = 0.0
                            for c in 0..<k { p[row * k + c] = Foundation.exp(p[row * k + c] - top); total += p[row * k + c] }
                            for c in 0..<k { p[row * k + c] /= total }
                            loss -= Foundation.log(max(p[row * k + targets[row]], 1e-300))
                        }
                    }
                }
            }
            loss /= Double(n)
            gradient.withUnsafeMutableBufferPointer { g in
                x.withUnsafeBufferPointer { x in
                    probabilities.withUnsafeBufferPointer { p in
                        for row in 0..<n {
                            let features = row * d
                            for c in 0..<k {
                                let error = (p[row * k + c] - (targets[row] == c ? 1 : 0)) / Double(n)
                                guard error != 0 else { continue }
                                let weights = c * d
                                for column in 0..<d { g[weights + column] += error * x[features + column] }
                                g[k * d + c] += error
                            }
                        }
                    }
                }
            }
            for index in 0..<(k * d) {
                loss += 0.5 * lambda * theta[index] * theta[index]
                gradient[index] += lambda * theta[index]
            }
            return loss
        }

        var theta = [Double](repeating: 0, count: parameters)
        var gradient = [Double](repeating: 0, count: parameters)
        var loss = evaluate(theta, gradient: &gradient)
        var steps: [[Double]] = []
        var changes: [[Double]] = []
        let memory = 8
        var iterations = 0
        func dot(_ a: [Double], _ b: [Double]) -> Double {
            var sum = 0.0
            for index in a.indices { sum += a[index] * b[index] }
            return sum
        }
        while iterations < maxIterations {
            iterations += 1
            // The two-loop recursion: the direction -H·g.
            var q = gradient
            var alphas: [Double] = []
            for (s, y) in zip(steps, changes).reversed() {
                let alpha = dot(s, q) / dot(y, s)
                alphas.append(alpha)
                for index in q.indices { q[index] -= alpha * y[index] }
            }
            if let s = steps.last, let y = changes.last {
                let scale = dot(s, y) / dot(y, y)
                for index in q.indices { q[index] *= scale }
            } else {
                let norm = dot(q, q).squareRoot()
                if norm > 0 { for index in q.indices { q[index] /= norm } }
            }
            for ((s, y), alpha) in zip(zip(steps, changes), alphas.reversed()) {
                let beta = dot(y, q) / dot(y, s)
                for index in q.indices { q[index] += s[index] * (alpha - beta) }
            }
            let slope = -dot(gradient, q)
            guard slope < 0 else { break }
            // Backtracking (Armijo) along -q.
            var stepSize = 1.0
            var next = theta
            var nextGradient = gradient
            var nextLoss = loss
            var accepted = false
            for _ in 0..<30 {
                for index in next.indices { next[index] = theta[index] - stepSize * q[index] }
                nextLoss = evaluate(next, gradient: &nextGradient)
                if nextLoss <= loss + 1e-4 * stepSize * slope { accepted = true; break }
                stepSize *= 0.5
            }
            guard accepted else { break }
            let s = zip(next, theta).map { $0 - $1 }
            let y = zip(nextGradient, gradient).map { $0 - $1 }
            let improvement = loss - nextLoss
            theta = next
            gradient = nextGradient
            loss = nextLoss
            if dot(s, y) > 1e-12 {
                steps.append(s)
                changes.append(y)
                if steps.count > memory {
                    steps.removeFirst()
                    changes.removeFirst()
                }
            }
            if improvement < 1e-9 * max(1, abs(loss)) || dot(gradient, gradient).squareRoot() < 1e-6 { break }
        }
        return Fit(weights: Array(theta[0..<(k * d)]), bias: Array(theta[(k * d)...]), iterations: iterations, loss: loss)
    }
}
