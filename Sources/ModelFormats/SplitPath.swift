/// The folder and the file name of `path`: the folder is "." for a bare name
/// and "/" for a name at the root; the name is empty when `path` ends in "/".
func splitPath(_ path: String) -> (directory: String, name: String) {
    guard let slash = path.lastIndex(of: "/") else { return (".", path) }
    let directory = String(path[..<slash])
    return (directory.isEmpty ? "/" : directory, String(path[path.index(after: slash)...]))
}
