rule viewer:
    input:
        PATHS.summary,
    output:
        report(
            directory("results/viewer"),
            htmlindex="index.html",
            caption="../report/viewer.rst",
            category="Viewer",
            labels={"content": "comparison of the methods and restoration process"},
        ),
    log:
        "results/logs/viewer.log",
    benchmark:
        "results/benchmarks/viewer.tsv"
    conda:
        "../envs/dip.yaml"
    params:
        image_side=config["viewer"]["image_side"],
        frame_side=config["viewer"]["frame_side"],
        max_frames=config["viewer"]["max_frames"],
    shell:
        "dip viewer {input:q} --out {output:q} --image-side {params.image_side}"
        " --frame-side {params.frame_side} --max-frames {params.max_frames} > {log:q} 2>&1"
