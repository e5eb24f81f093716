/// The names an object has had so far: a short list is scanned, a long one hashed, so a hostile
/// object of many members costs linear time, not quadratic.
struct MemberNames {
    /// The first four names, held without allocating: most objects (a subtask) have no more.
    private var inline: (String, String, String, String) = ("", "", "", "")
    private var inlineCount = 0
    private var list: [String] = []
    private var set: Set<String>?

    /// Records `name`; false if it was there already.
    mutating func insert(_ name: String) -> Bool {
        if set != nil { return set!.insert(name).inserted }
        if inlineContains(name) || list.contains(where: { $0.isName(name) }) { return false }
        switch inlineCount {
        case 0: inline.0 = name
        case 1: inline.1 = name
        case 2: inline.2 = name
        case 3: inline.3 = name
        default:
            list.append(name)
            if list.count == 12 {
                set = Set(list + [inline.0, inline.1, inline.2, inline.3])
                list = []
            }
            return true
        }
        inlineCount += 1
        return true
    }

    private func inlineContains(_ name: String) -> Bool {
        switch inlineCount {
        case 4: inline.0.isName(name) || inline.1.isName(name) || inline.2.isName(name) || inline.3.isName(name)
        case 3: inline.0.isName(name) || inline.1.isName(name) || inline.2.isName(name)
        case 2: inline.0.isName(name) || inline.1.isName(name)
        case 1: inline.0.isName(name)
        default: false
        }
    }
}
