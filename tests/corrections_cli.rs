//! `orchard corrections`: the summary, the corrected CSV in a new file, and
//! the refusals (exit 2).

mod common;
use common::*;

fn s(p: &std::path::Path) -> &str {
    p.to_str().unwrap()
}

#[test]
fn summary_export_and_refusals() {
    let t = tempfile::tempdir().unwrap();
    let run_dir = t.path().join("run");
    std::fs::create_dir_all(run_dir.join("checkpoints")).unwrap();
    std::fs::write(
        run_dir.join("folds.csv"),
        "image_id,cat,dog,fold\na,1,0,0\nb,1,0,1\nc,0,1,1\n",
    )
    .unwrap();
    std::fs::write(
        run_dir.join("corrections.csv"),
        "fold,epoch,step,image_id,old_label,new_label,p_old,p_new,theta\n\
         0,1,5,b,cat,dog,0.100000,0.800000,0.500000\n\
         0,2,9,c,dog,cat,0.200000,0.700000,0.450000\n\
         0,3,12,c,cat,dog,0.100000,0.900000,0.400000\n",
    )
    .unwrap();
    // Only fold 0 trained (its checkpoint exists): its last labels decide.
    std::fs::write(run_dir.join("checkpoints/fold0.safetensors"), b"").unwrap();
    let out = t.path().join("fixed.csv");
    let (code, stdout, stderr) = run(&["corrections", s(&run_dir), "--export", s(&out)]);
    assert_eq!(code, 0, "{stderr}");
    assert!(
        stdout.starts_with("3 correction(s) of 2 image(s) (data set of 3 images)"),
        "{stdout}"
    );
    assert!(
        stdout.contains("  cat -> dog: 2\n  dog -> cat: 1\n"),
        "{stdout}"
    );
    assert!(stdout.contains("1 with a corrected label"), "{stdout}");
    assert_eq!(
        std::fs::read_to_string(&out).unwrap(),
        "image_id,cat,dog\na,1,0\nb,0,1\nc,0,1\n"
    );
    // Never overwritten; the user's CSV is not ours to touch anyway.
    let (code, _, stderr) = run(&["corrections", s(&run_dir), "--export", s(&out)]);
    assert_eq!(code, 2);
    assert!(stderr.contains("already exists"), "{stderr}");
    let (code, _, stderr) = run(&["corrections", s(t.path())]);
    assert_eq!(code, 2);
    assert!(stderr.contains("no folds.csv"), "{stderr}");
    // A damaged row is named.
    std::fs::write(
        run_dir.join("corrections.csv"),
        "fold,epoch,step,image_id,old_label,new_label,p_old,p_new,theta\nx,1,5,b,cat,dog,0.1,0.8,0.5\n",
    )
    .unwrap();
    let (code, _, stderr) = run(&["corrections", s(&run_dir)]);
    assert_eq!(code, 2);
    assert!(
        stderr.contains("row 2") && stderr.contains("column 1"),
        "{stderr}"
    );
}

#[test]
fn export_follows_the_reviews_written_beside_the_corrections() {
    let t = tempfile::tempdir().unwrap();
    let run_dir = t.path().join("run");
    std::fs::create_dir_all(run_dir.join("checkpoints")).unwrap();
    std::fs::write(
        run_dir.join("folds.csv"),
        "image_id,cat,dog,fold\na,1,0,0\nb,1,0,1\nc,0,1,1\nd,1,0,2\n",
    )
    .unwrap();
    // Folds 0 and 1 trained. b trains only in fold 0 here, which corrected it;
    // a trains in fold 1, which corrected it; d trains in both, only fold 0
    // corrected it (a tie: the vote alone would keep cat).
    std::fs::write(
        run_dir.join("corrections.csv"),
        "fold,epoch,step,image_id,old_label,new_label,p_old,p_new,theta,review\n\
         0,1,5,b,cat,dog,0.100000,0.800000,0.500000,\n\
         1,1,5,a,cat,dog,0.100000,0.800000,0.500000,\n\
         0,2,9,d,cat,dog,0.200000,0.700000,0.450000,\n",
    )
    .unwrap();
    for f in [0, 1] {
        std::fs::write(
            run_dir.join(format!("checkpoints/fold{f}.safetensors")),
            b"",
        )
        .unwrap();
    }
    // Reviews as the dashboard appends them: b rejected, d accepted (against
    // the tie), c set to cat though never corrected, a reviewed twice.
    let mut file = std::fs::OpenOptions::new()
        .append(true)
        .open(run_dir.join("corrections.csv"))
        .unwrap();
    std::io::Write::write_all(
        &mut file,
        b",,,b,cat,cat,,,,rejected\n\
          ,,,d,cat,dog,,,,accepted\n\
          ,,,c,dog,cat,,,,set\n\
          ,,,a,cat,dog,,,,rejected\n\
          ,,,a,cat,dog,,,,accepted\n",
    )
    .unwrap();
    let out = t.path().join("fixed.csv");
    let (code, stdout, stderr) = run(&["corrections", s(&run_dir), "--export", s(&out)]);
    assert_eq!(code, 0, "{stderr}");
    assert!(
        stdout.contains("reviewed: 4 image(s): 2 accepted, 1 rejected, 1 set"),
        "{stdout}"
    );
    assert_eq!(
        std::fs::read_to_string(&out).unwrap(),
        "image_id,cat,dog\na,0,1\nb,1,0\nc,1,0\nd,0,1\n"
    );
}
