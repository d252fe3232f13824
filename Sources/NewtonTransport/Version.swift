/// The version of newtonps and of its wire protocol. Peers register only
/// with a driver that speaks the same protocol and has the same major and
/// minor version.
public enum NewtonPSVersion {
    public static let version = "0.5.0"
    public static let wireProtocol = "newtonps.v1"

    /// Why a peer of `version` speaking `wireProtocol` cannot join, or nil.
    public static func incompatibility(version: String, wireProtocol: String) -> String? {
        guard wireProtocol == self.wireProtocol else {
            return "peer speaks protocol '\(wireProtocol)', this driver speaks '\(self.wireProtocol)'"
        }
        let mine = self.version.split(separator: ".").prefix(2)
        let theirs = version.split(separator: ".").prefix(2)
        guard mine == theirs else { return "peer runs newtonps \(version), this driver runs \(self.version) (major.minor must match)" }
        return nil
    }
}
