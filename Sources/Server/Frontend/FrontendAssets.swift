import HTTPTypes
import Hummingbird
import NIOCore

/// The frontend kit the binary serves itself: the playground page at `/`, its script, and the typed browser
/// client at `/client.js`. The files are embedded at build time (they contain no data), so they answer without
/// a key and work offline.
enum FrontendAssets {
    struct Asset: Sendable {
        let contentType: String
        let bytes: ByteBuffer
    }

    static let assets: [String: Asset] = [
        "/": Asset(contentType: "text/html; charset=utf-8", bytes: ByteBuffer(bytes: PackageResources.index_html)),
        "/client.js": Asset(contentType: "text/javascript; charset=utf-8", bytes: ByteBuffer(bytes: PackageResources.client_js)),
        "/playground.js": Asset(contentType: "text/javascript; charset=utf-8", bytes: ByteBuffer(bytes: PackageResources.playground_js)),
    ]

    /// Paths anyone may read.
    static var paths: Set<String> { Set(assets.keys) }

    static func add<Context: RequestContext>(to routes: some RouterMethods<Context>) {
        for (path, asset) in assets {
            routes.get(RouterPath(path)) { _, _ in
                var headers = HTTPFields()
                headers[.contentType] = asset.contentType
                headers[.cacheControl] = "no-cache"
                headers[HTTPField.Name("X-Content-Type-Options")!] = "nosniff"
                // Only this server's own scripts, styles inline in the page, and calls back to this server.
                headers[HTTPField.Name("Content-Security-Policy")!] =
                    "default-src 'none'; script-src 'self'; style-src 'unsafe-inline'; connect-src 'self'; img-src 'self' data:; "
                    + "base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
                return Response(status: .ok, headers: headers, body: ResponseBody(byteBuffer: asset.bytes))
            }
        }
    }
}
