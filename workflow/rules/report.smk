rule render:
    input:
        summary=PATHS.summary,
        traces=PATHS.traces,
    output:
        markdown="results/tables/{task}.md",
        latex="results/tables/{task}.tex",
        html=report(
            "results/tables/{task}.html",
            caption="../report/table.rst",
            category="{task}",
            subcategory="Tables",
            labels={"task": "{task}", "content": "PSNR and SSIM per method and level"},
        ),
        psnr=report(
            "results/figures/{task}-psnr.png",
            caption="../report/psnr.rst",
            category="{task}",
            subcategory="Figures",
            labels={"task": "{task}", "content": "PSNR per method and level"},
        ),
        cost=report(
            "results/figures/{task}-cost.png",
            caption="../report/cost.rst",
            category="{task}",
            subcategory="Figures",
            labels={"task": "{task}", "content": "PSNR against wall seconds"},
        ),
        curves=report(
            "results/figures/{task}-curves.png",
            caption="../report/curves.rst",
            category="{task}",
            subcategory="Figures",
            labels={"task": "{task}", "content": "PSNR against iteration"},
        ),
        rules=report(
            "results/figures/{task}-rules.png",
            caption="../report/rules.rst",
            category="{task}",
            subcategory="Figures",
            labels={"task": "{task}", "content": "Stopping rules on one fit"},
        ),
        images=report(
            "results/figures/{task}-images.png",
            caption="../report/images.rst",
            category="{task}",
            subcategory="Figures",
            labels={"task": "{task}", "content": "Restored images"},
        ),
    log:
        "results/logs/render/{task}.log",
    benchmark:
        "results/benchmarks/render/{task}.tsv"
    conda:
        "../envs/dip.yaml"
    params:
        tables=lambda wildcards, output: os.path.dirname(output.html),
        figures=lambda wildcards, output: os.path.dirname(output.psnr),
    shell:
        "dip render {input.summary} --traces {input.traces} --task {wildcards.task}"
        " --tables {params.tables} --figures {params.figures} > {log} 2>&1"
