# Builds a tool from FanoutCore's sources alone (and FanoutSync's, as a module of its own, which
# FanoutCore imports for its one lock), as scripts/fuzz.sh does. Source it, then:
#   build_core_tool DIR OUTPUT SWIFTC_ARG...   (the tool's own sources and flags as the args)
build_core_tool() {
    local dir=$1 output=$2
    shift 2
    local root
    root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
    mkdir -p "$dir"
    swiftc -O -parse-as-library -module-name FanoutSync -emit-module -emit-module-path "$dir/FanoutSync.swiftmodule" \
        -emit-object -wmo "$root"/Sources/FanoutSync/*.swift -o "$dir/FanoutSync.o"
    swiftc -O -parse-as-library -module-name FanoutCore -I "$dir" "$root"/Sources/FanoutCore/*.swift "$@" \
        "$dir/FanoutSync.o" -o "$dir/$output"
}
