# vivado_stub.tcl -- a stand-in for Vivado's Tcl commands, to test generated Vivado scripts with tclsh.
#
# usage: tclsh vivado_stub.tcl SCRIPT.tcl [tclargs...]
#
# Every Vivado command a qrtl script may use is a proc here that checks its arguments (known options
# only, required options present, parts from boards/boards.json, every file passed exists, the top
# module and its ports exist in the added Verilog, steps in a valid order) and records the call.  The
# call log goes to $env(VIVADO_STUB_LOG) (default: vivado_stub_calls.log next to SCRIPT).  Any problem --
# an unknown command (a typo), an unknown option, a missing file, a wrong part or clock -- stops the run
# with exit status 1 and a message naming it.  On success it prints "vivado stub: OK ..." and exits 0.

namespace eval stub {
    variable dir [file dirname [file normalize [info script]]]
    variable calls {}
    variable parts [dict create]        ;# part -> clock_mhz (FPGA boards only)
    variable project ""
    variable project_part ""
    variable filesets [dict create sources_1 {} constrs_1 {} sim_1 {}]
    variable top ""
    variable core ""
    variable core_top ""
    variable ports {}                   ;# ports of the packaged top module
    variable busifs [dict create]       ;# name -> vlnv
    variable busparams [dict create]    ;# busif -> list of parameter names
    variable assoc [dict create]        ;# busif -> clock
    variable saved 0
    variable read_sources {}
    variable xdcs {}
    variable design ""                  ;# "" | synth | opt | placed | routed
    variable design_top ""
    variable design_part ""
    variable reports {}
    variable checkpoints {}
}

namespace eval ipx {}

proc stub::fail {msg} {
    return -code error "vivado stub: $msg"
}

proc stub::record {cmd args} {
    variable calls
    lappend calls [concat [list $cmd] $args]
}

# parse args against spec {-opt arity ...}; returns {opts positional}
proc stub::parse {cmd spec arglist} {
    set opts [dict create]
    set pos {}
    for {set i 0} {$i < [llength $arglist]} {incr i} {
        set a [lindex $arglist $i]
        if {[string match -* $a] && ![string is double -strict $a]} {
            if {![dict exists $spec $a]} {
                stub::fail "$cmd: unknown option '$a' (known: [dict keys $spec])"
            }
            if {[dict get $spec $a] == 1} {
                incr i
                if {$i >= [llength $arglist]} { stub::fail "$cmd: option '$a' needs a value" }
                dict set opts $a [lindex $arglist $i]
            } else {
                dict set opts $a 1
            }
        } else {
            lappend pos $a
        }
    }
    return [list $opts $pos]
}

proc stub::need {cmd opts names} {
    foreach n $names {
        if {![dict exists $opts $n]} { stub::fail "$cmd: required option '$n' missing" }
    }
}

proc stub::load_parts {} {
    variable dir
    variable parts
    set f [file join $dir .. boards boards.json]
    set fh [open $f]
    set text [read $fh]
    close $fh
    foreach {all name body} [regexp -all -inline {"([A-Za-z0-9_-]+)"\s*:\s*\{([^{}]*)\}} $text] {
        if {![regexp {"part"\s*:\s*"([^"]+)"} $body -> part]} continue
        if {![regexp {"clock_mhz"\s*:\s*([0-9.]+)} $body -> clk]} continue
        if {[regexp {"yosys_family"\s*:\s*null} $body]} continue   ;# the generic ASIC target is no FPGA part
        dict set parts $part $clk
    }
    if {[dict size $parts] == 0} { stub::fail "no FPGA parts found in $f" }
}

proc stub::check_part {cmd part} {
    variable parts
    if {![dict exists $parts $part]} {
        stub::fail "$cmd: part '$part' is not an FPGA part of boards/boards.json ([dict keys $parts])"
    }
}

proc stub::check_files {cmd files} {
    set out {}
    foreach f [concat {*}$files] {
        if {![file isfile $f]} { stub::fail "$cmd: no such file '$f'" }
        lappend out [file normalize $f]
    }
    if {[llength $out] == 0} { stub::fail "$cmd: no files given" }
    return $out
}

# module names and port lists of Verilog files
proc stub::modules {files} {
    set mods [dict create]
    foreach f $files {
        if {![string match *.v $f] && ![string match *.sv $f]} continue
        set fh [open $f]
        set text [read $fh]
        close $fh
        foreach {all name hdr} [regexp -all -inline {module\s+([A-Za-z_][A-Za-z0-9_$]*)\s*\(([^;]*)\)\s*;} $text] {
            set ports {}
            foreach {m p} [regexp -all -inline {(?:input|output|inout)\s+(?:wire\s+|reg\s+)?(?:signed\s+)?(?:\[[^\]]*\]\s*)?([A-Za-z_][A-Za-z0-9_]*)} $hdr] {
                lappend ports $p
            }
            dict set mods $name $ports
        }
    }
    return $mods
}

proc stub::parent_dir_exists {cmd path} {
    if {![file isdirectory [file dirname $path]]} {
        stub::fail "$cmd: directory of '$path' does not exist"
    }
}

proc stub::need_design {cmd states} {
    variable design
    if {[lsearch -exact $states $design] < 0} {
        stub::fail "$cmd: needs a design in state [join $states /], have '[expr {$design eq {} ? {none} : $design}]'"
    }
}

# ---- project commands -------------------------------------------------------------------------

proc create_project {args} {
    stub::record create_project {*}$args
    lassign [stub::parse create_project {-force 0 -part 1 -in_memory 0 -ip 0} $args] opts pos
    stub::need create_project $opts {-part}
    if {[llength $pos] < 1 || [llength $pos] > 2} { stub::fail "create_project: expects NAME ?DIR?, got '$pos'" }
    stub::check_part create_project [dict get $opts -part]
    if {$::stub::project ne ""} { stub::fail "create_project: project '$::stub::project' is already open" }
    if {[llength $pos] == 2} {
        set d [lindex $pos 1]
        if {[file exists [file join $d [lindex $pos 0].xpr]] && ![dict exists $opts -force]} {
            stub::fail "create_project: project exists, needs -force"
        }
        file mkdir $d
    }
    set ::stub::project [lindex $pos 0]
    set ::stub::project_part [dict get $opts -part]
    return $::stub::project
}

proc current_project {args} {
    stub::record current_project {*}$args
    lassign [stub::parse current_project {-quiet 0} $args] opts pos
    if {$::stub::project eq ""} { stub::fail "current_project: no project open" }
    return "project:$::stub::project"
}

proc get_filesets {args} {
    stub::record get_filesets {*}$args
    lassign [stub::parse get_filesets {-quiet 0} $args] opts pos
    if {$::stub::project eq ""} { stub::fail "get_filesets: no project open" }
    set out {}
    foreach n $pos {
        if {![dict exists $::stub::filesets $n]} { stub::fail "get_filesets: no fileset '$n'" }
        lappend out "fileset:$n"
    }
    return $out
}

proc current_fileset {args} {
    stub::record current_fileset {*}$args
    lassign [stub::parse current_fileset {-constrset 0 -simset 0} $args] opts pos
    if {[dict exists $opts -constrset]} { return "fileset:constrs_1" }
    return "fileset:sources_1"
}

proc add_files {args} {
    stub::record add_files {*}$args
    lassign [stub::parse add_files {-norecurse 0 -fileset 1 -scan_for_includes 0 -quiet 0 -copy_to 1} $args] opts pos
    if {$::stub::project eq ""} { stub::fail "add_files: no project open" }
    set fs [expr {[dict exists $opts -fileset] ? [dict get $opts -fileset] : "sources_1"}]
    if {![dict exists $::stub::filesets $fs]} { stub::fail "add_files: no fileset '$fs'" }
    set files [stub::check_files add_files $pos]
    foreach f $files {
        if {$fs eq "constrs_1" && ![string match *.xdc $f]} { stub::fail "add_files: '$f' in constrs_1 is not an XDC" }
        if {$fs eq "sources_1" && [string match *.xdc $f]} { stub::fail "add_files: XDC '$f' added as a source" }
        dict lappend ::stub::filesets $fs $f
    }
    return $files
}

proc get_files {args} {
    stub::record get_files {*}$args
    lassign [stub::parse get_files {-of_objects 1 -quiet 0 -all 0} $args] opts pos
    set out {}
    foreach p $pos {
        set found 0
        dict for {fs files} $::stub::filesets {
            foreach f $files {
                if {$f eq [file normalize $p] || [string match $p [file tail $f]] || [string match $p $f]} {
                    lappend out "file:$f"
                    set found 1
                }
            }
        }
        if {!$found} { stub::fail "get_files: '$p' matches no file of the project" }
    }
    return $out
}

proc set_property {args} {
    stub::record set_property {*}$args
    lassign [stub::parse set_property {-dict 1 -quiet 0 -name 1 -value 1 -objects 1} $args] opts pos
    if {[dict exists $opts -name]} {
        set name [dict get $opts -name]; set value [dict get $opts -value]; set objs [dict get $opts -objects]
    } else {
        if {[llength $pos] != 3} { stub::fail "set_property: expects NAME VALUE OBJECTS, got '$pos'" }
        lassign $pos name value objs
    }
    if {[llength $objs] == 0} { stub::fail "set_property $name: no objects" }
    foreach obj $objs {
        if {![regexp {^(project|fileset|file|core|param|busif):} $obj]} {
            stub::fail "set_property $name: '$obj' is not an object handle (use get_filesets/get_files/...)"
        }
    }
    switch -- $name {
        top {
            set mods [stub::modules [dict get $::stub::filesets sources_1]]
            if {![dict exists $mods $value]} {
                stub::fail "set_property top: module '$value' is not defined in the added sources ([dict keys $mods])"
            }
            set ::stub::top $value
        }
        USED_IN {
            foreach v $value {
                if {[lsearch -exact {synthesis implementation out_of_context simulation} $v] < 0} {
                    stub::fail "set_property USED_IN: bad value '$v'"
                }
            }
            foreach obj $objs { if {![string match file:* $obj]} { stub::fail "set_property USED_IN: '$obj' is not a file" } }
        }
        target_language {
            if {[lsearch -exact {Verilog VHDL} $value] < 0} { stub::fail "set_property target_language: bad value '$value'" }
        }
        ip_repo_paths {
            foreach d $value { if {![file isdirectory $d]} { stub::fail "set_property ip_repo_paths: no directory '$d'" } }
        }
        value {
            foreach obj $objs { if {![string match param:* $obj]} { stub::fail "set_property value: '$obj' is not a bus parameter" } }
            if {$value ni {ACTIVE_LOW ACTIVE_HIGH}} { stub::fail "set_property value: unexpected '$value'" }
        }
        version - display_name - description - vendor_display_name - company_url {}
        default { stub::fail "set_property: property '$name' is not one the stub knows" }
    }
    return ""
}

proc update_compile_order {args} {
    stub::record update_compile_order {*}$args
    lassign [stub::parse update_compile_order {-fileset 1 -quiet 0} $args] opts pos
    if {$::stub::project eq ""} { stub::fail "update_compile_order: no project open" }
    return ""
}

proc update_ip_catalog {args} {
    stub::record update_ip_catalog {*}$args
    lassign [stub::parse update_ip_catalog {-rebuild 0 -quiet 0} $args] opts pos
    if {$::stub::project eq ""} { stub::fail "update_ip_catalog: no project open" }
    return ""
}

proc close_project {args} {
    stub::record close_project {*}$args
    lassign [stub::parse close_project {-delete 0 -quiet 0} $args] opts pos
    if {$::stub::project eq ""} { stub::fail "close_project: no project open" }
    set ::stub::project ""
    return ""
}

# ---- IP packaging -------------------------------------------------------------------------------

proc ipx::package_project {args} {
    stub::record ipx::package_project {*}$args
    lassign [stub::parse ipx::package_project {-root_dir 1 -vendor 1 -library 1 -taxonomy 1 -import_files 0
        -set_current 1 -force 0 -generated_files 0 -module 1} $args] opts pos
    stub::need ipx::package_project $opts {-root_dir -vendor -library -taxonomy}
    if {$::stub::project eq ""} { stub::fail "ipx::package_project: no project open" }
    if {$::stub::top eq ""} { stub::fail "ipx::package_project: the project has no top module" }
    if {[llength $pos]} { stub::fail "ipx::package_project: unexpected arguments '$pos'" }
    file mkdir [dict get $opts -root_dir]
    set mods [stub::modules [dict get $::stub::filesets sources_1]]
    set ::stub::ports [dict get $mods $::stub::top]
    set ::stub::core "core:[dict get $opts -vendor]:[dict get $opts -library]:$::stub::top"
    set ::stub::core_top $::stub::top
    return $::stub::core
}

proc stub::check_core {cmd core} {
    if {$::stub::core eq "" || $core ne $::stub::core} { stub::fail "$cmd: '$core' is not the current IP core" }
}

proc ipx::current_core {args} {
    stub::record ipx::current_core {*}$args
    if {$::stub::core eq ""} { stub::fail "ipx::current_core: no IP core (run ipx::package_project first)" }
    return $::stub::core
}

proc ipx::get_bus_interfaces {args} {
    stub::record ipx::get_bus_interfaces {*}$args
    lassign [stub::parse ipx::get_bus_interfaces {-of_objects 1 -quiet 0} $args] opts pos
    stub::need ipx::get_bus_interfaces $opts {-of_objects}
    stub::check_core ipx::get_bus_interfaces [dict get $opts -of_objects]
    set out {}
    dict for {name vlnv} $::stub::busifs {
        if {[llength $pos] == 0 || [string match [lindex $pos 0] $name]} { lappend out "busif:$name" }
    }
    return $out
}

proc ipx::infer_bus_interfaces {args} {
    stub::record ipx::infer_bus_interfaces {*}$args
    lassign [stub::parse ipx::infer_bus_interfaces {} $args] opts pos
    if {[llength $pos] != 2} { stub::fail "ipx::infer_bus_interfaces: expects VLNV CORE" }
    lassign $pos vlnv core
    stub::check_core ipx::infer_bus_interfaces $core
    if {$vlnv ne "xilinx.com:interface:axis_rtl:1.0"} { stub::fail "ipx::infer_bus_interfaces: unexpected VLNV '$vlnv'" }
    set n 0
    foreach p $::stub::ports {
        if {[regexp {^(.*)_tdata$} $p -> prefix]} {
            foreach sig {tvalid tready} {
                if {[lsearch -exact $::stub::ports ${prefix}_$sig] < 0} {
                    stub::fail "ipx::infer_bus_interfaces: $prefix has tdata but no $sig"
                }
            }
            dict set ::stub::busifs $prefix $vlnv
            incr n
        }
    }
    if {$n == 0} { stub::fail "ipx::infer_bus_interfaces: no AXI4-Stream ports on $::stub::core_top" }
    return ""
}

proc ipx::infer_bus_interface {args} {
    stub::record ipx::infer_bus_interface {*}$args
    lassign [stub::parse ipx::infer_bus_interface {} $args] opts pos
    if {[llength $pos] != 3} { stub::fail "ipx::infer_bus_interface: expects PORT VLNV CORE" }
    lassign $pos port vlnv core
    stub::check_core ipx::infer_bus_interface $core
    if {[lsearch -exact $::stub::ports $port] < 0} {
        stub::fail "ipx::infer_bus_interface: no port '$port' on $::stub::core_top ($::stub::ports)"
    }
    if {$vlnv ni {xilinx.com:signal:clock_rtl:1.0 xilinx.com:signal:reset_rtl:1.0}} {
        stub::fail "ipx::infer_bus_interface: unexpected VLNV '$vlnv'"
    }
    dict set ::stub::busifs $port $vlnv
    return "busif:$port"
}

proc ipx::get_bus_parameters {args} {
    stub::record ipx::get_bus_parameters {*}$args
    lassign [stub::parse ipx::get_bus_parameters {-of_objects 1 -quiet 0} $args] opts pos
    stub::need ipx::get_bus_parameters $opts {-of_objects}
    set bif [dict get $opts -of_objects]
    if {![regexp {^busif:(.*)$} $bif -> name] || ![dict exists $::stub::busifs $name]} {
        stub::fail "ipx::get_bus_parameters: '$bif' is not a bus interface"
    }
    set out {}
    if {[dict exists $::stub::busparams $name]} {
        foreach p [dict get $::stub::busparams $name] {
            if {[llength $pos] == 0 || [string match [lindex $pos 0] $p]} { lappend out "param:$name:$p" }
        }
    }
    return $out
}

proc ipx::add_bus_parameter {args} {
    stub::record ipx::add_bus_parameter {*}$args
    lassign [stub::parse ipx::add_bus_parameter {} $args] opts pos
    if {[llength $pos] != 2} { stub::fail "ipx::add_bus_parameter: expects NAME BUSIF" }
    lassign $pos p bif
    if {![regexp {^busif:(.*)$} $bif -> name] || ![dict exists $::stub::busifs $name]} {
        stub::fail "ipx::add_bus_parameter: '$bif' is not a bus interface"
    }
    dict lappend ::stub::busparams $name $p
    return "param:$name:$p"
}

proc ipx::associate_bus_interfaces {args} {
    stub::record ipx::associate_bus_interfaces {*}$args
    lassign [stub::parse ipx::associate_bus_interfaces {-busif 1 -clock 1 -reset 1 -remove 0} $args] opts pos
    stub::need ipx::associate_bus_interfaces $opts {-clock}
    if {[llength $pos] != 1} { stub::fail "ipx::associate_bus_interfaces: expects the core as last argument" }
    stub::check_core ipx::associate_bus_interfaces [lindex $pos 0]
    set clk [dict get $opts -clock]
    if {![dict exists $::stub::busifs $clk] || [dict get $::stub::busifs $clk] ne "xilinx.com:signal:clock_rtl:1.0"} {
        stub::fail "ipx::associate_bus_interfaces: '$clk' is not an inferred clock interface"
    }
    if {![dict exists $opts -busif] && ![dict exists $opts -reset]} {
        stub::fail "ipx::associate_bus_interfaces: needs -busif or -reset"
    }
    foreach o {-busif -reset} {
        if {[dict exists $opts $o]} {
            set b [dict get $opts $o]
            if {![dict exists $::stub::busifs $b]} { stub::fail "ipx::associate_bus_interfaces: no bus interface '$b'" }
            dict set ::stub::assoc $b $clk
        }
    }
    return ""
}

foreach cmd {create_xgui_files update_checksums check_integrity save_core} {
    proc ipx::$cmd {args} [string map [list CMD $cmd] {
        stub::record ipx::CMD {*}$args
        lassign [stub::parse ipx::CMD {-quiet 0} $args] opts pos
        if {[llength $pos] != 1} { stub::fail "ipx::CMD: expects the core" }
        stub::check_core ipx::CMD [lindex $pos 0]
        if {"CMD" eq "check_integrity"} {
            dict for {name vlnv} $::stub::busifs {
                if {$vlnv eq "xilinx.com:interface:axis_rtl:1.0" && ![dict exists $::stub::assoc $name]} {
                    stub::fail "ipx::check_integrity: AXI4-Stream interface '$name' has no associated clock"
                }
            }
            foreach need {s_axis m_axis aclk aresetn} {
                if {![dict exists $::stub::busifs $need]} { stub::fail "ipx::check_integrity: no '$need' interface" }
            }
        }
        if {"CMD" eq "save_core"} { set ::stub::saved 1 }
        return ""
    }]
}

# ---- non-project flow ---------------------------------------------------------------------------

proc read_verilog {args} {
    stub::record read_verilog {*}$args
    lassign [stub::parse read_verilog {-sv 0 -library 1 -quiet 0} $args] opts pos
    foreach f [stub::check_files read_verilog $pos] {
        if {![string match *.v $f] && ![string match *.sv $f]} { stub::fail "read_verilog: '$f' is not Verilog" }
        lappend ::stub::read_sources $f
    }
    return ""
}

proc read_xdc {args} {
    stub::record read_xdc {*}$args
    lassign [stub::parse read_xdc {-mode 1 -unmanaged 0 -ref 1 -cells 1 -quiet 0} $args] opts pos
    if {[dict exists $opts -mode] && [dict get $opts -mode] ni {default out_of_context}} {
        stub::fail "read_xdc: bad -mode '[dict get $opts -mode]'"
    }
    foreach f [stub::check_files read_xdc $pos] {
        if {![string match *.xdc $f]} { stub::fail "read_xdc: '$f' is not an XDC file" }
        lappend ::stub::xdcs $f
    }
    return ""
}

# evaluate an XDC against the synthesized top: ports must exist, the clock must be the board's
proc stub::eval_xdc {f ports part} {
    set i [interp create]
    set clocks {}
    interp alias $i get_ports {} stub::xdc_get_ports $ports
    interp alias $i create_clock {} stub::xdc_create_clock $f $part
    interp alias $i set_property {} stub::xdc_set_property
    foreach c [$i eval {info commands}] {
        if {$c ni {get_ports create_clock set_property set list expr}} { $i hide $c }
    }
    set fh [open $f]
    set text [read $fh]
    close $fh
    if {[catch {$i eval $text} err]} {
        interp delete $i
        stub::fail "XDC $f: $err"
    }
    interp delete $i
}

proc stub::xdc_get_ports {ports args} {
    set out {}
    foreach p $args {
        if {[lsearch -exact $ports $p] < 0} { error "get_ports: no port '$p' on the top module ($ports)" }
        lappend out "port:$p"
    }
    return $out
}

proc stub::xdc_create_clock {f part args} {
    lassign [stub::parse create_clock {-period 1 -name 1 -waveform 1 -add 0} $args] opts pos
    stub::need create_clock $opts {-period -name}
    if {[llength $pos] != 1 || ![string match port:* [lindex $pos 0]]} { error "create_clock: needs one port object" }
    set period [dict get $opts -period]
    set want [expr {1000.0 / [dict get $::stub::parts $part]}]
    if {abs($period - $want) > 0.001} { error "create_clock: period $period ns is not the board clock ($want ns for $part)" }
    lappend ::stub::clocks [dict get $opts -name]
    return ""
}

proc stub::xdc_set_property {args} { return "" }

proc synth_design {args} {
    stub::record synth_design {*}$args
    lassign [stub::parse synth_design {-top 1 -part 1 -mode 1 -flatten_hierarchy 1 -directive 1 -rtl 0 -quiet 0} $args] opts pos
    stub::need synth_design $opts {-top -part -mode}
    if {[llength $pos]} { stub::fail "synth_design: unexpected arguments '$pos'" }
    if {[dict get $opts -mode] ne "out_of_context"} { stub::fail "synth_design: expected -mode out_of_context" }
    set part [dict get $opts -part]
    stub::check_part synth_design $part
    if {$::stub::project_part ne "" && $part ne $::stub::project_part} {
        stub::fail "synth_design: part $part differs from the project's $::stub::project_part"
    }
    if {[llength $::stub::read_sources] == 0} { stub::fail "synth_design: no sources read (read_verilog)" }
    set mods [stub::modules $::stub::read_sources]
    set top [dict get $opts -top]
    if {![dict exists $mods $top]} { stub::fail "synth_design: top '$top' not found in the sources ([dict keys $mods])" }
    # every instantiated module must be defined
    foreach f $::stub::read_sources {
        set fh [open $f]; set text [read $fh]; close $fh
        foreach {all m inst} [regexp -all -inline {\n\s*([A-Za-z_][A-Za-z0-9_]*)\s+(u_[A-Za-z0-9_]*)\s*\(} $text] {
            if {![dict exists $mods $m]} { stub::fail "synth_design: module '$m' (instance $inst in $f) is not defined" }
        }
    }
    if {[llength $::stub::xdcs] == 0} { stub::fail "synth_design: no constraints read (read_xdc)" }
    set ::stub::clocks {}
    foreach f $::stub::xdcs { stub::eval_xdc $f [dict get $mods $top] $part }
    if {[llength $::stub::clocks] == 0} { stub::fail "synth_design: the constraints define no clock" }
    set ::stub::design synth
    set ::stub::design_top $top
    set ::stub::design_part $part
    return "design:$top"
}

proc opt_design {args} {
    stub::record opt_design {*}$args
    lassign [stub::parse opt_design {-directive 1 -quiet 0} $args] opts pos
    stub::need_design opt_design {synth}
    set ::stub::design opt
    return ""
}

proc place_design {args} {
    stub::record place_design {*}$args
    lassign [stub::parse place_design {-directive 1 -quiet 0} $args] opts pos
    stub::need_design place_design {opt}
    set ::stub::design placed
    return ""
}

proc route_design {args} {
    stub::record route_design {*}$args
    lassign [stub::parse route_design {-directive 1 -quiet 0} $args] opts pos
    stub::need_design route_design {placed}
    set ::stub::design routed
    return ""
}

proc stub::write_stub_file {cmd path what} {
    stub::parent_dir_exists $cmd $path
    set fh [open $path w]
    puts $fh "vivado stub: $what of $::stub::design_top ($::stub::design_part), design state $::stub::design"
    close $fh
}

proc write_checkpoint {args} {
    stub::record write_checkpoint {*}$args
    lassign [stub::parse write_checkpoint {-force 0 -quiet 0} $args] opts pos
    if {[llength $pos] != 1} { stub::fail "write_checkpoint: expects one file" }
    stub::need_design write_checkpoint {synth opt placed routed}
    set f [lindex $pos 0]
    if {[file exists $f] && ![dict exists $opts -force]} { stub::fail "write_checkpoint: '$f' exists, needs -force" }
    stub::write_stub_file write_checkpoint $f checkpoint
    lappend ::stub::checkpoints [list $::stub::design $f]
    return ""
}

proc report_utilization {args} {
    stub::record report_utilization {*}$args
    lassign [stub::parse report_utilization {-file 1 -hierarchical 0 -name 1 -quiet 0} $args] opts pos
    stub::need report_utilization $opts {-file}
    stub::need_design report_utilization {synth opt placed routed}
    stub::write_stub_file report_utilization [dict get $opts -file] "utilization report"
    lappend ::stub::reports [list utilization $::stub::design [dict get $opts -file]]
    return ""
}

proc report_timing_summary {args} {
    stub::record report_timing_summary {*}$args
    lassign [stub::parse report_timing_summary {-file 1 -max_paths 1 -delay_type 1 -report_unconstrained 0
        -name 1 -quiet 0} $args] opts pos
    stub::need report_timing_summary $opts {-file}
    stub::need_design report_timing_summary {synth opt placed routed}
    if {[dict exists $opts -max_paths] && ![string is integer -strict [dict get $opts -max_paths]]} {
        stub::fail "report_timing_summary: -max_paths needs an integer"
    }
    stub::write_stub_file report_timing_summary [dict get $opts -file] "timing report"
    lappend ::stub::reports [list timing $::stub::design [dict get $opts -file]]
    return ""
}

# ---- run ----------------------------------------------------------------------------------------

proc stub::finish {package_only} {
    if {!$::stub::saved} { stub::fail "the script never saved an IP core (ipx::save_core)" }
    if {$package_only} {
        if {$::stub::design ne ""} { stub::fail "package_only: the script synthesized anyway" }
        return
    }
    if {$::stub::design ne "routed"} { stub::fail "the design was not routed (state '$::stub::design')" }
    foreach kind {utilization timing} {
        set ok 0
        foreach r $::stub::reports {
            if {[lindex $r 0] eq $kind && [lindex $r 1] eq "routed"} { set ok 1 }
        }
        if {!$ok} { stub::fail "no $kind report after route_design" }
    }
}

if {$argc < 1} {
    puts stderr "usage: tclsh vivado_stub.tcl SCRIPT.tcl ?tclargs...?"
    exit 2
}
set stub_script [file normalize [lindex $argv 0]]
set stub_log [expr {[info exists env(VIVADO_STUB_LOG)] ? $env(VIVADO_STUB_LOG)
                    : [file join [file dirname $stub_script] vivado_stub_calls.log]}]
set argv [lrange $argv 1 end]
set argc [llength $argv]
if {[catch {stub::load_parts} err]} {
    puts stderr $err
    exit 1
}
set stub_status [catch {source $stub_script} stub_err stub_opts]
# 'return' at the script's top level (code 2) ends the script normally
if {$stub_status == 0 || $stub_status == 2} {
    set stub_status [catch {stub::finish [expr {[lsearch -exact $argv package_only] >= 0}]} stub_err]
}
set fh [open $stub_log w]
foreach c $stub::calls { puts $fh $c }
close $fh
if {$stub_status != 0} {
    puts stderr "FAILED: $stub_err"
    exit 1
}
puts "vivado stub: OK, [llength $stub::calls] Vivado commands, part $stub::design_part, top $stub::design_top"
exit 0
