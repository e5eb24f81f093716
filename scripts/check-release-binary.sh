#!/usr/bin/env bash
# Builds fanoutd as the Dockerfile does, then checks that the binary needs no shared library
# beyond what the image's runtime stage has (debian:bookworm-slim + libmicrohttpd12 +
# ca-certificates). This machine is Debian 12 (bookworm), as both image stages are, so what ldd
# finds here is what the dynamic loader will look for there.
#
#   scripts/check-release-binary.sh               build into .build-ops, then check
#   scripts/check-release-binary.sh path/to/bin   check an existing binary (no build)
#
# Environment: SCRATCH_PATH (default .build-ops) is the build folder.
# Exits non-zero when:
#   - the build fails;
#   - a library is "not found";
#   - a library is not in the allowed set below;
#   - the binary does not start.
set -euo pipefail
cd "$(dirname "$0")/.."

# The allowed set: soname -> the Debian package that provides it in the runtime stage.
#
# --static-swift-stdlib links the Swift runtime, Foundation (if used), Dispatch and the Swift
# packages' code (NIO, BoringSSL from swift-nio-ssl, …) into the binary. What is left dynamic:
#   - glibc (package libc6, in every Debian image):
#     the loader, libc, libm, and the split-out pthread/dl/rt/util/resolv stubs.
#   - libstdc++6 and libgcc-s1, which the static Swift runtime needs. They are part of
#     bookworm-slim already: apt itself depends on them.
#   - zlib1g, part of bookworm-slim (dpkg depends on it). It is allowed in case a dependency
#     links zlib (NIO's compression does).
#   - libmicrohttpd12, installed by the runtime stage, and what apt installs with it
#     (`apt-cache depends --recurse libmicrohttpd12`): GnuTLS and its libraries. They are loaded
#     through libmicrohttpd.so.12, which is why ldd lists them.
# ca-certificates brings no library; it is there for the https subtasks.
declare -A allowed=(
    [linux-vdso.so.1]="kernel (virtual, no file)"
    [ld-linux-x86-64.so.2]=libc6
    [ld-linux-aarch64.so.1]=libc6
    [libc.so.6]=libc6
    [libm.so.6]=libc6
    [libpthread.so.0]=libc6
    [libdl.so.2]=libc6
    [librt.so.1]=libc6
    [libutil.so.1]=libc6
    [libresolv.so.2]=libc6
    [libstdc++.so.6]=libstdc++6
    [libgcc_s.so.1]=libgcc-s1
    [libz.so.1]=zlib1g
    [libmicrohttpd.so.12]=libmicrohttpd12
    [libgnutls.so.30]=libgnutls30
    [libp11-kit.so.0]=libp11-kit0
    [libidn2.so.0]=libidn2-0
    [libunistring.so.2]=libunistring2
    [libtasn1.so.6]=libtasn1-6
    [libnettle.so.8]=libnettle8
    [libhogweed.so.6]=libhogweed6
    [libgmp.so.10]=libgmp10
    [libffi.so.8]=libffi8
)

if [ $# -gt 0 ]; then
    bin=$1
else
    scratch=${SCRATCH_PATH:-.build-ops}
    # The Dockerfile's build command, plus a scratch path of our own.
    echo "check-release-binary: swift build -c release --static-swift-stdlib --product fanoutd --scratch-path $scratch" >&2
    swift build -c release --static-swift-stdlib --product fanoutd --scratch-path "$scratch"
    bin=$scratch/release/fanoutd
fi
[ -x "$bin" ] || { echo "check-release-binary: $bin is not an executable" >&2; exit 1; }

status=0
echo "check-release-binary: $bin"
if command -v readelf >/dev/null; then
    echo "  direct dependencies (NEEDED): $(readelf -d "$bin" | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p' | tr '\n' ' ')"
fi

# check_libraries FILE: every library ldd resolves for FILE must be in the allowed set, and where
# dpkg knows the file, it must come from the package the set names.
check_libraries() {
    local file=$1 output line name soname path real package result=0
    output=$(ldd "$file" 2>&1) || { echo "$output"; echo "  ldd $file failed"; return 1; }
    while IFS= read -r line; do
        line=${line#"${line%%[![:space:]]*}"}
        [ -n "$line" ] || continue
        name=${line%% *}
        soname=$(basename "$name")
        path=""
        if [[ $line == *" => "* ]]; then
            path=${line#* => }
            path=${path%% (*}
        elif [[ $name == /* ]]; then
            path=$name
        fi
        if [[ $line == *"not found"* ]]; then
            echo "    $soname: NOT FOUND"
            result=1
            continue
        fi
        if [ -z "${allowed[$soname]+set}" ]; then
            echo "    $soname ($path): NOT ALLOWED: the runtime stage does not install it"
            result=1
            continue
        fi
        package=""
        if [ -n "$path" ] && command -v dpkg >/dev/null; then
            real=$(readlink -f "$path")
            package=$( { dpkg -S "$real" 2>/dev/null || dpkg -S "${real#/usr}" 2>/dev/null || true; } | head -n 1 | cut -d: -f1)
        fi
        if [ -n "$package" ] && [ "$package" != "${allowed[$soname]}" ]; then
            echo "    $soname: from $package here, but allowed only as part of ${allowed[$soname]}"
            result=1
            continue
        fi
        echo "    $soname: ok (${allowed[$soname]}${package:+; dpkg: $package})"
    done <<<"$output"
    # Swift's own runtime must be inside the binary, not beside it.
    if grep -Eq 'libswift|libFoundation|libdispatch|libBlocksRuntime|lib_FoundationICU' <<<"$output"; then
        echo "    the Swift runtime is linked dynamically: --static-swift-stdlib did not take effect"
        result=1
    fi
    return $result
}

echo "  libraries the loader resolves (ldd):"
check_libraries "$bin" || status=1

# The backtracer the image copies next to the binary: the Swift runtime is static in it too,
# and it needs only glibc and libstdc++.
backtracer=$(dirname "$(readlink -f "$(command -v swift)")")/../libexec/swift/linux/swift-backtrace-static
if [ -f "$backtracer" ]; then
    echo "  swift-backtrace-static (copied into the image):"
    check_libraries "$backtracer" || status=1
fi

# And it must start: the loader resolves everything, and the argument parser answers.
if "$bin" --help >/dev/null 2>&1; then
    echo "  starts: fanoutd --help exits 0"
else
    echo "  fanoutd --help failed"
    status=1
fi

if [ $status -ne 0 ]; then
    echo "check-release-binary: FAILED" >&2
    exit 1
fi
echo "check-release-binary: OK: nothing beyond debian:bookworm-slim + libmicrohttpd12 + ca-certificates"
