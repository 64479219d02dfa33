"""The commands on a trained run: evaluate, predict, explain, export and bundle.
"""

from __future__ import annotations

from tlcore.cli.output import print_json, say


def cmd_evaluate(args) -> None:
    from tlcore.results.evaluation import evaluate_run

    reports = evaluate_run(args.run_dir, recompute=getattr(args, "recompute", False))
    if args.json:
        print_json(reports)
        return
    for split, report in reports.items():
        say(f"{split}: accuracy {report['accuracy']:.1%}, loss {report['loss']:.4f}, {report['images']} images")
        say(f"  {'class':<24} {'precision':>9} {'recall':>7} {'f1':>6} {'support':>7}")
        for row in report["per_class"]:
            say(f"  {row['class']:<24} {row['precision']:>9.3f} {row['recall']:>7.3f} {row['f1']:>6.3f} {row['support']:>7}")
        say("  confusion (rows: true, columns: predicted):")
        for name, counts in zip(report["class_names"], report["confusion"], strict=False):
            say(f"  {name:<24} " + " ".join(f"{c:>4}" for c in counts))


def cmd_predict(args) -> None:
    from tlcore.results.prediction import predict_files

    predictions = predict_files(args.run_dir, args.images, top_k=args.top_k)
    if args.json:
        print_json([p.to_dict() for p in predictions])
        return
    for prediction in predictions:
        ranked = ", ".join(f"{name} {probability:.1%}" for name, probability in prediction.top)
        doubt = prediction.doubt
        note = f"  (looks like none of the classes: {doubt.reason})" if doubt is not None and doubt.unfamiliar else ""
        say(f"{prediction.file}: {ranked}{note}")


def cmd_explain(args) -> None:
    from tlcore.results.explain import write_explanations

    written = write_explanations(args.run_dir, args.images, args.out, class_name=args.class_name)
    if args.json:
        print_json([item.to_dict() for item in written])
        return
    for item in written:
        note = " (looks like none of the classes)" if item.doubt is not None and item.doubt.unfamiliar else ""
        say(f"{item.file}: {item.predicted} {item.probability:.1%}{note}, heatmap of {item.explained!r} -> {item.path}")


def cmd_export(args) -> None:
    from tlcore.export.parity import check_export
    from tlcore.export.writers import export_run
    from tlcore.runs.quiet import native_stderr_silenced

    with native_stderr_silenced():  # the converters' and runtimes' native chatter
        path = export_run(args.run_dir, args.format, args.out)
        report = check_export(args.run_dir, args.format, path) if args.check else None
    if args.json:
        print_json({"path": str(path), "format": args.format, **(report.to_dict() if report else {})})
        return
    say(f"exported {args.format} to {path}")
    if report:
        echo_parity(report)


def echo_parity(report) -> None:
    agreeing = round(report.agreement * report.pictures)
    say(f"checked on the run's {report.pictures} {'validation' if report.split == 'val' else report.split} pictures "
        f"with {report.runtime}, each prepared as the snippet does:")
    say(f"  agrees with the app on {report.agreement:.1%} of them ({agreeing}/{report.pictures}); "
        f"accuracy {report.accuracy:.1%} (the app's model: {report.app_accuracy:.1%})")
    say(f"  largest probability difference {report.max_probability_difference:.6f}; "
        f"size {report.size_bytes / 1e6:.1f} MB; {report.latency_ms:.1f} ms per picture (median, this machine)")
    if report.flagged:
        say(f"  WARNING: answers differently from the app on {len(report.differing)} pictures (more than 1%):")
    for row in report.differing:
        say(f"    {row['file']} (is {row['true']}): app {row['app']} {row['app_probability']:.0%}, "
            f"file {row['exported']} {row['exported_probability']:.0%}")


def cmd_bundle(args) -> None:
    from tlcore.export.bundle import make_bundle
    from tlcore.runs.quiet import native_stderr_silenced

    with native_stderr_silenced():
        bundle = make_bundle(args.run_dir, [name.strip() for name in args.formats.split(",") if name.strip()], args.out)
    if args.json:
        print_json(bundle.to_dict())
        return
    say(f"bundle written to {bundle.path}")
    for report in bundle.reports:
        mark = "  <- answers differently from the app on more than 1%" if report.flagged else ""
        mark += "" if report.rechecked else f"  (parity from the check of {report.check_date})"
        say(f"  {report.format:<12} agrees {report.agreement:>6.1%}  accuracy {report.accuracy:>6.1%}  "
            f"{report.size_bytes / 1e6:>6.1f} MB  {report.latency_ms:>6.1f} ms{mark}")
    if bundle.note:
        say(f"note: {bundle.note}")
