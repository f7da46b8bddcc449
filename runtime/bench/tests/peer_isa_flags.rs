//! `scripts/peer-isa-flags.sh` picks llama.cpp's instruction sets from /proc/cpuinfo for the
//! `make bench` peer: every extension the CPU lists, never AMX (a VM that advertises AMX it does
//! not let a process use makes a `-march=native` llama-server die at start).

use std::path::Path;
use std::process::Command;

fn flags_for(cpu_flags: &str) -> String {
    let dir = std::env::temp_dir().join(format!("dsr-isa-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let cpuinfo = dir.join(format!("cpuinfo-{}", cpu_flags.len()));
    std::fs::write(
        &cpuinfo,
        format!("processor\t: 0\nflags\t\t: {cpu_flags}\nbugs\t\t: none\n"),
    )
    .expect("writing a fake cpuinfo");
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/peer-isa-flags.sh");
    let out = Command::new("bash")
        .arg(script)
        .env("CPUINFO", &cpuinfo)
        .output()
        .expect("running scripts/peer-isa-flags.sh");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("utf-8 flags")
}

#[test]
fn an_intel_vm_advertising_amx_gets_avx512_vnni_and_bf16_but_never_amx() {
    let flags = flags_for(
        "fpu sse4_2 avx avx2 bmi2 fma f16c avx512f avx512cd avx512vl avx512dq avx512bw \
         avx512vbmi avx512_vnni avx512_bf16 avx512_fp16 amx_bf16 amx_tile amx_int8 avx_vnni",
    );
    for on in [
        "-DGGML_NATIVE=OFF",
        "-DGGML_AVX2=ON",
        "-DGGML_AVX512=ON",
        "-DGGML_AVX512_VNNI=ON",
        "-DGGML_AVX512_BF16=ON",
        "-DGGML_AVX_VNNI=ON",
    ] {
        assert!(flags.contains(on), "{on} missing from {flags}");
    }
    for amx in [
        "-DGGML_AMX_TILE=OFF",
        "-DGGML_AMX_INT8=OFF",
        "-DGGML_AMX_BF16=OFF",
    ] {
        assert!(flags.contains(amx), "{amx} missing from {flags}");
    }
    assert!(!flags.contains("NATIVE=ON"), "{flags}");
}

#[test]
fn an_avx2_only_cpu_gets_no_avx512() {
    let flags = flags_for("fpu sse4_2 avx avx2 fma f16c");
    assert!(flags.contains("-DGGML_AVX2=ON"), "{flags}");
    assert!(flags.contains("-DGGML_AVX512=OFF"), "{flags}");
    assert!(flags.contains("-DGGML_AVX512_VNNI=OFF"), "{flags}");
    assert!(flags.contains("-DGGML_BMI2=OFF"), "{flags}");
}

#[test]
fn a_flag_is_matched_whole_not_as_a_prefix() {
    // "avx512f" must not be read from "avx512fp16" alone, nor "avx" from "avx2".
    let flags = flags_for("fpu avx2 avx512fp16");
    assert!(flags.contains("-DGGML_AVX=OFF"), "{flags}");
    assert!(flags.contains("-DGGML_AVX512=OFF"), "{flags}");
}
