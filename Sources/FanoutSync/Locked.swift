// Public: `withLock` is inlinable (as `Mutex.withLock` is), so its callers see the pthread calls.
#if canImport(Glibc)
public import Glibc
#elseif canImport(Darwin)
public import Darwin
#endif

/// A value behind a `pthread_mutex_t`, shaped like `Synchronization.Mutex` (`init(_:)`,
/// `withLock { state in … }`).
///
/// Why not `Mutex`: on Linux it is built on futex system calls, which ThreadSanitizer does not
/// see, so under TSan every access it guards is reported as a race (see SANITIZERS.md). TSan
/// intercepts `pthread_mutex_lock`/`unlock`, so with this lock its reports mean something.
///
/// Copies share the one lock and value (it is a reference to them), as a `let` of a `Mutex` is
/// shared by whoever holds the object it is in. Not reentrant. Sendable when its value is
/// (`Mutex` takes any value as `sending`; a generic wrapper cannot check that without unsafety).
public struct Locked<State> {
    @usableFromInline let storage: LockedStorage<State>

    public init(_ initialValue: State) {
        storage = LockedStorage.make(initialValue)
    }

    /// Runs `body` with the lock held and the value to read or change.
    @inlinable
    public func withLock<Result, E: Error>(_ body: (inout State) throws(E) -> Result) throws(E) -> Result {
        try storage.withUnsafeMutablePointers { (state, mutex) throws(E) -> Result in
            pthread_mutex_lock(mutex)
            defer { pthread_mutex_unlock(mutex) }
            return try body(&state.pointee)
        }
    }
}

/// The value is only reached with the lock held.
extension Locked: @unchecked Sendable where State: Sendable {}

/// The value (the header) and the mutex (the one element) in one allocation.
@usableFromInline
final class LockedStorage<State>: ManagedBuffer<State, pthread_mutex_t> {
    static func make(_ initialValue: State) -> LockedStorage {
        let buffer = create(minimumCapacity: 1) { _ in initialValue }
        buffer.withUnsafeMutablePointerToElements { mutex in
            mutex.initialize(to: pthread_mutex_t())
            let created = pthread_mutex_init(mutex, nil)
            precondition(created == 0, "pthread_mutex_init failed: \(created)")
        }
        // `create` is typed as returning a ManagedBuffer; it made a LockedStorage.
        return unsafeDowncast(buffer, to: LockedStorage.self)
    }

    // ManagedBuffer destroys the header (the value) itself.
    deinit {
        withUnsafeMutablePointerToElements { mutex in
            pthread_mutex_destroy(mutex)
            mutex.deinitialize(count: 1)
        }
    }
}
