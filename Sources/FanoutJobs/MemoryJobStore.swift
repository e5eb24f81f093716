import FanoutSync

/// The embedded store (`jobs.store: "memory"`): one state machine behind one lock, lost on restart.
///
/// Bounded by `maxBytes` (line bytes plus ``RetainedLine/overheadBytes`` each). When an append does
/// not fit, expired jobs are dropped first; if it still does not fit, the append waits (the job's
/// dispatcher with it: no new subtask starts) until a delete or an expiry frees room. A batch is
/// always accepted into an empty store, and after ``stopWaitingForSpace()``. Readers and appenders
/// wait on continuations woken by the change they wait for; nothing polls.
public final class MemoryJobStore: JobStore {
    public let maxBytes: Int
    /// Seconds a job's lines are kept after its end line.
    public let retentionSeconds: Double
    private let clock: @Sendable () -> Double
    private let state = Locked(State())

    public init(maxBytes: Int, retentionSeconds: Double, clock: @escaping @Sendable () -> Double = { WallClock.now }) {
        self.maxBytes = maxBytes
        self.retentionSeconds = retentionSeconds
        self.clock = clock
    }

    private struct Entry {
        var status: RetainedJobStatus
        var owner: String?
        /// The scoped idempotency key, if the job has one.
        var claimKey: String?
        /// `lines[i].seq == i + 1`.
        var lines: [RetainedLine] = []
        var bytes = 0
        /// Creation order, for "newest first".
        var serial: Int
        var onCancel: @Sendable () -> Void
        var readers: [Int: UnsafeContinuation<Void, Never>] = [:]
    }

    private struct Claim {
        var fingerprint: String
        /// nil while the first request with the key is being admitted.
        var jobID: String?
    }

    private struct State {
        var jobs: [String: Entry] = [:]
        var claims: [String: Claim] = [:]
        var bytes = 0
        var lines = 0
        var serial = 0
        var spaceWaiters: [Int: UnsafeContinuation<Void, Never>] = [:]
        var nextToken = 0
        /// Tokens of waits in progress, and those of them cancelled before they registered.
        var activeTokens: Set<Int> = []
        var cancelledTokens: Set<Int> = []
        var neverWait = false

        mutating func token() -> Int {
            nextToken += 1
            activeTokens.insert(nextToken)
            return nextToken
        }

        func visible(_ id: String, owner: String?, now: Double) -> Entry? {
            guard let entry = jobs[id], entry.owner == nil || entry.owner == owner else { return nil }
            if let expiresAt = entry.status.expiresAt, expiresAt <= now { return nil }
            return entry
        }

        /// Removes a job and its key; returns the appenders to wake.
        mutating func remove(_ id: String) -> [UnsafeContinuation<Void, Never>] {
            guard let entry = jobs.removeValue(forKey: id) else { return [] }
            bytes -= entry.bytes
            lines -= entry.lines.count
            if let key = entry.claimKey, claims[key]?.jobID == id { claims[key] = nil }
            defer { spaceWaiters = [:] }
            return Array(spaceWaiters.values) + Array(entry.readers.values)
        }

        mutating func removeExpired(now: Double) -> (count: Int, wake: [UnsafeContinuation<Void, Never>]) {
            var wake: [UnsafeContinuation<Void, Never>] = []
            var count = 0
            for (id, entry) in jobs {
                guard let expiresAt = entry.status.expiresAt, expiresAt <= now else { continue }
                wake += remove(id)
                count += 1
            }
            return (count, wake)
        }
    }

    static func scoped(_ key: String, owner: String?) -> String { (owner ?? "") + "\u{0}" + key }

    public func create(_ job: NewRetainedJob) async {
        state.withLock { state in
            state.serial += 1
            var entry = Entry(
                status: RetainedJobStatus(job: job.id, state: .running, total: job.total, createdAt: job.createdAt),
                owner: job.owner, serial: state.serial, onCancel: job.onCancel
            )
            if let key = job.idempotencyKey {
                let scoped = Self.scoped(key, owner: job.owner)
                entry.claimKey = scoped
                state.claims[scoped, default: Claim(fingerprint: "")].jobID = job.id
            }
            state.jobs[job.id] = entry
        }
    }

    public func append(_ id: String, lines: [RetainedLine]) async {
        guard !lines.isEmpty else { return }
        let need = lines.reduce(0) { $0 + $1.retainedBytes }
        var force = false
        while true {
            let now = clock()
            let (stored, token, wake) = state.withLock { state -> (Bool, Int, [UnsafeContinuation<Void, Never>]) in
                guard state.jobs[id] != nil else { return (true, 0, []) }
                var wake: [UnsafeContinuation<Void, Never>] = []
                if state.bytes + need > maxBytes { wake = state.removeExpired(now: now).wake }
                guard force || state.neverWait || state.bytes == 0 || state.bytes + need <= maxBytes else {
                    return (false, state.token(), wake)
                }
                state.bytes += need
                state.lines += lines.count
                var entry = state.jobs.removeValue(forKey: id)!
                entry.bytes += need
                for line in lines {
                    entry.lines.append(line)
                    if let status = line.status { entry.status.count(status) }
                    if line.event == .end, entry.status.state == .running {
                        entry.status.state = .finished
                        entry.status.finishedAt = now
                        entry.status.expiresAt = now + retentionSeconds
                    }
                }
                entry.status.lastSeq = entry.lines.count
                wake += entry.readers.values
                entry.readers = [:]
                state.jobs[id] = entry
                return (true, 0, wake)
            }
            for waiter in wake { waiter.resume() }
            if stored { return }
            await suspend(token) { state, continuation in
                if state.neverWait || state.bytes == 0 || state.bytes + need <= maxBytes { return false }
                state.spaceWaiters[token] = continuation
                return true
            } unregister: { state in
                state.spaceWaiters.removeValue(forKey: token)
            }
            // A cancelled job task must still store its lines (readers rely on the end line).
            if Task.isCancelled { force = true }
        }
    }

    public func read(_ id: String, owner: String?, after: Int, maxLines: Int) async throws -> JobRead {
        while true {
            try Task.checkCancellation()
            let now = clock()
            let step = state.withLock { state -> Result<JobRead, JobStoreError>? in
                guard let entry = state.visible(id, owner: owner, now: now) else { return .failure(.notFound) }
                let ended = entry.status.state != .running
                if entry.lines.count > after {
                    let upTo = min(entry.lines.count, max(after, 0) + max(maxLines, 1))
                    return .success(JobRead(lines: Array(entry.lines[max(after, 0)..<upTo]), ended: ended && upTo == entry.lines.count))
                }
                if ended { return .success(JobRead(lines: [], ended: true)) }
                return nil
            }
            if let step { return try step.get() }
            let token = state.withLock { $0.token() }
            await suspend(token) { state, continuation in
                guard let entry = state.jobs[id], entry.lines.count <= after, entry.status.state == .running else { return false }
                state.jobs[id]!.readers[token] = continuation
                return true
            } unregister: { state in
                state.jobs[id]?.readers.removeValue(forKey: token)
            }
        }
    }

    /// Waits until woken or cancelled. `register` runs under the lock and returns whether it
    /// stored the continuation (false: the condition already holds, do not wait).
    private func suspend(
        _ token: Int,
        register: @Sendable (inout State, UnsafeContinuation<Void, Never>) -> Bool,
        unregister: @escaping @Sendable (inout State) -> UnsafeContinuation<Void, Never>?
    ) async {
        await withTaskCancellationHandler {
            await withUnsafeContinuation { (continuation: UnsafeContinuation<Void, Never>) in
                let waiting = state.withLock { state -> Bool in
                    if state.cancelledTokens.contains(token) { return false }
                    return register(&state, continuation)
                }
                if !waiting { continuation.resume() }
            }
        } onCancel: {
            let waiter = state.withLock { state -> UnsafeContinuation<Void, Never>? in
                if let waiter = unregister(&state) { return waiter }
                if state.activeTokens.contains(token) { state.cancelledTokens.insert(token) }
                return nil
            }
            waiter?.resume()
        }
        state.withLock { state in
            state.activeTokens.remove(token)
            state.cancelledTokens.remove(token)
        }
    }

    public func status(_ id: String, owner: String?) async -> RetainedJobStatus? {
        let now = clock()
        return state.withLock { $0.visible(id, owner: owner, now: now)?.status }
    }

    public func list(owner: String?, state wanted: RetainedJobState?) async -> [RetainedJobStatus] {
        let now = clock()
        return state.withLock { state in
            state.jobs.keys.compactMap { state.visible($0, owner: owner, now: now) }
                .filter { wanted == nil || $0.status.state == wanted }
                .sorted { $0.serial > $1.serial }
                .map(\.status)
        }
    }

    public func requestCancel(_ id: String, owner: String?) async -> RetainedJobStatus? {
        let now = clock()
        let found = state.withLock { state -> (RetainedJobStatus, (@Sendable () -> Void)?)? in
            guard let entry = state.visible(id, owner: owner, now: now) else { return nil }
            return (entry.status, entry.status.state == .running ? entry.onCancel : nil)
        }
        found?.1?()
        return found?.0
    }

    public func waitUntilEnded(_ id: String, owner: String?, limit: Duration) async -> RetainedJobStatus? {
        guard let start = await status(id, owner: owner) else { return nil }
        if start.state == .running {
            await withTaskGroup(of: Void.self) { group in
                group.addTask {
                    var after = start.lastSeq
                    while let read = try? await self.read(id, owner: owner, after: after, maxLines: 4096), !read.ended {
                        after = read.lines.last?.seq ?? after
                    }
                }
                group.addTask { try? await Task.sleep(for: limit) }
                await group.next()
                group.cancelAll()
            }
        }
        return await status(id, owner: owner)
    }

    public func delete(_ id: String, owner: String?) async -> DeleteOutcome {
        let now = clock()
        let (outcome, wake) = state.withLock { state -> (DeleteOutcome, [UnsafeContinuation<Void, Never>]) in
            guard let entry = state.visible(id, owner: owner, now: now) else { return (.notFound, []) }
            if entry.status.state == .running { return (.running, []) }
            return (.deleted, state.remove(id))
        }
        for waiter in wake { waiter.resume() }
        return outcome
    }

    public func expire() async -> Int {
        let now = clock()
        let (count, wake) = state.withLock { $0.removeExpired(now: now) }
        for waiter in wake { waiter.resume() }
        return count
    }

    public func claim(key: String, fingerprint: String, owner: String?) async -> IdempotencyClaim {
        let now = clock()
        let scoped = Self.scoped(key, owner: owner)
        return state.withLock { state in
            // A key whose job has expired (not yet swept) is free again.
            if let claim = state.claims[scoped], claim.jobID.map({ state.visible($0, owner: owner, now: now) != nil }) ?? true {
                guard claim.fingerprint == fingerprint else { return .mismatch }
                guard let id = claim.jobID else { return .inProgress }
                return .existing(jobID: id)
            }
            state.claims[scoped] = Claim(fingerprint: fingerprint)
            return .claimed
        }
    }

    public func releaseClaim(key: String, owner: String?) async {
        let scoped = Self.scoped(key, owner: owner)
        state.withLock { state in
            if state.claims[scoped]?.jobID == nil { state.claims[scoped] = nil }
        }
    }

    public func stopWaitingForSpace() {
        let wake = state.withLock { state in
            state.neverWait = true
            defer { state.spaceWaiters = [:] }
            return Array(state.spaceWaiters.values)
        }
        for waiter in wake { waiter.resume() }
    }

    public func usage() -> JobStoreUsage {
        state.withLock { state in
            var usage = JobStoreUsage()
            usage.jobs = state.jobs.count
            usage.running = state.jobs.values.count { $0.status.state == .running }
            usage.bytes = state.bytes
            usage.lines = state.lines
            return usage
        }
    }
}
