//! The mislabeled-item viewer's model: which items it lists, which one is
//! selected, and what its keys do.
//!
//! Two lists: the validation items with the highest loss in the latest
//! validation (`ValidationTopLosses`), and the images label correction
//! changed (`RUN_DIR/corrections.csv`, read by the event loop). A review
//! (accept, reject, set another class) is queued in `App::reviews_out` for
//! the loop to append to `corrections.csv`, and shown at once.

use std::path::PathBuf;

use crate::run::LossItem;
use crate::run::reviews::{CorrectionsFile, Review, ReviewRow};

use super::keymap::Action;
use super::state::{App, Overlay};

/// Which list the viewer shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ViewerList {
    #[default]
    TopLosses,
    Corrections,
}

impl ViewerList {
    pub fn title(self) -> &'static str {
        match self {
            ViewerList::TopLosses => "highest validation losses",
            ViewerList::Corrections => "corrected by PLC",
        }
    }
}

/// Where the viewer is.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ViewerState {
    pub list: ViewerList,
    /// Index into the shown list (clamped to its length when used).
    pub selected: usize,
    /// The class list is open, its cursor on this class.
    pub picking: Option<usize>,
    /// The outcome of the last review (or why it could not be written).
    pub message: Option<String>,
}

/// The latest `ValidationTopLosses`.
#[derive(Debug, Clone, PartialEq)]
pub struct TopLosses {
    pub fold: usize,
    pub epoch: usize,
    pub items: Vec<LossItem>,
}

/// One row of the viewer, whichever list it comes from.
#[derive(Debug, Clone, PartialEq)]
pub struct ViewItem {
    pub image_id: String,
    /// The image file, if known.
    pub image: Option<PathBuf>,
    /// The label in the data.
    pub label: String,
    /// The label the run suggests: PLC's correction, or the prediction.
    pub suggested: String,
    /// One line on where the item comes from (loss, fold, epoch).
    pub detail: String,
    /// (class, probability), highest first.
    pub probs: Vec<(String, f32)>,
    /// The latest review of the image, if any.
    pub review: Option<ReviewRow>,
}

/// The items of the shown list.
pub fn items(app: &App) -> Vec<ViewItem> {
    let classes: &[String] = app
        .plan
        .as_ref()
        .map(|p| p.dataset.classes.as_slice())
        .unwrap_or_default();
    let name = |c: usize| classes.get(c).cloned().unwrap_or_else(|| c.to_string());
    let reviews = app.corrections_file.latest_reviews();
    let review_of = |id: &str| reviews.get(id).map(|r| (*r).clone());
    match app.viewer.list {
        ViewerList::TopLosses => {
            let Some(top) = &app.top_losses else {
                return Vec::new();
            };
            top.items
                .iter()
                .map(|item| {
                    let mut probs: Vec<(String, f32)> = item
                        .probs
                        .iter()
                        .enumerate()
                        .map(|(c, &p)| (name(c), p))
                        .collect();
                    probs.sort_by(|a, b| b.1.total_cmp(&a.1));
                    ViewItem {
                        image_id: item.image_id.clone(),
                        image: Some(PathBuf::from(&item.image)),
                        label: name(item.label),
                        suggested: name(item.prediction()),
                        detail: format!(
                            "loss {:.3} · fold {} epoch {}",
                            item.loss, top.fold, top.epoch
                        ),
                        probs,
                        review: review_of(&item.image_id),
                    }
                })
                .collect()
        }
        ViewerList::Corrections => corrected_images(&app.corrections_file)
            .into_iter()
            .map(|c| ViewItem {
                image: app.image_paths.get(&c.image_id).cloned(),
                review: review_of(&c.image_id),
                detail: format!(
                    "{} correction(s), last in fold {} epoch {}",
                    c.times, c.fold, c.epoch
                ),
                probs: [(c.new.clone(), c.p_new), (c.old.clone(), c.p_old)]
                    .into_iter()
                    .filter_map(|(class, p)| Some((class, p? as f32)))
                    .collect(),
                image_id: c.image_id,
                label: c.original,
                suggested: c.new,
            })
            .collect(),
    }
}

/// One image PLC changed, over every fold that changed it.
struct Corrected {
    image_id: String,
    /// The label in the data: the `old` of the image's first correction
    /// (every fold starts from the data's labels).
    original: String,
    /// The latest correction.
    old: String,
    new: String,
    p_old: Option<f64>,
    p_new: Option<f64>,
    fold: usize,
    epoch: usize,
    times: usize,
}

/// The corrected images, most recently corrected first.
fn corrected_images(file: &CorrectionsFile) -> Vec<Corrected> {
    let mut images: Vec<Corrected> = Vec::new();
    for row in &file.plc {
        match images.iter_mut().find(|c| c.image_id == row.image_id) {
            Some(c) => {
                c.old.clone_from(&row.old);
                c.new.clone_from(&row.new);
                (c.p_old, c.p_new, c.fold, c.epoch) = (row.p_old, row.p_new, row.fold, row.epoch);
                c.times += 1;
            }
            None => images.push(Corrected {
                image_id: row.image_id.clone(),
                original: row.old.clone(),
                old: row.old.clone(),
                new: row.new.clone(),
                p_old: row.p_old,
                p_new: row.p_new,
                fold: row.fold,
                epoch: row.epoch,
                times: 1,
            }),
        }
    }
    images.reverse();
    images
}

/// The selected item, if the list has any.
pub fn selected(app: &App) -> Option<ViewItem> {
    let items = items(app);
    let i = app.viewer.selected.min(items.len().checked_sub(1)?);
    items.into_iter().nth(i)
}

/// Apply a viewer or class-list action.
pub fn handle(app: &mut App, action: Action) {
    let len = items(app).len();
    let classes = app
        .plan
        .as_ref()
        .map(|p| p.dataset.classes.clone())
        .unwrap_or_default();
    let viewer = &mut app.viewer;
    match action {
        Action::OpenViewer => {
            app.overlay = Overlay::Viewer;
            viewer.picking = None;
        }
        Action::CloseViewer => {
            app.overlay = Overlay::None;
            viewer.picking = None;
        }
        Action::NextItem => viewer.selected = (viewer.selected + 1).min(len.saturating_sub(1)),
        Action::PrevItem => viewer.selected = viewer.selected.min(len).saturating_sub(1),
        Action::SwitchList => {
            viewer.list = match viewer.list {
                ViewerList::TopLosses => ViewerList::Corrections,
                ViewerList::Corrections => ViewerList::TopLosses,
            };
            viewer.selected = 0;
        }
        Action::AcceptLabel => review(app, Review::Accepted, None),
        Action::RejectLabel => review(app, Review::Rejected, None),
        Action::SetClass if len > 0 && !classes.is_empty() => viewer.picking = Some(0),
        Action::NextClass => {
            viewer.picking = viewer
                .picking
                .map(|c| (c + 1).min(classes.len().saturating_sub(1)));
        }
        Action::PrevClass => viewer.picking = viewer.picking.map(|c| c.saturating_sub(1)),
        Action::CancelClass => viewer.picking = None,
        Action::ChooseClass => {
            if let Some(c) = viewer.picking.take()
                && let Some(class) = classes.get(c)
            {
                review(app, Review::Set, Some(class.clone()));
            }
        }
        _ => {}
    }
}

/// Review the selected item: queue the row for `corrections.csv` and show it.
fn review(app: &mut App, kind: Review, class: Option<String>) {
    let Some(item) = selected(app) else { return };
    let label = match kind {
        Review::Accepted => item.suggested.clone(),
        Review::Rejected => item.label.clone(),
        Review::Set => class.unwrap_or_else(|| item.label.clone()),
    };
    let row = ReviewRow {
        image_id: item.image_id.clone(),
        original: item.label.clone(),
        label,
        review: kind,
    };
    app.viewer.message = Some(format!(
        "{}: {} ({})",
        row.image_id,
        row.review.as_str(),
        row.label
    ));
    app.corrections_file.reviews.push(row.clone());
    app.reviews_out.push(row);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::run::reviews::PlcRow;
    use crate::run::{Event, Stamped};
    use crate::tui::state::tests::run_started;

    fn app_with_items() -> App {
        let mut app = App::from_events(&[run_started(0.0)]);
        app.apply(&Stamped {
            time: 1.0,
            event: Event::ValidationTopLosses {
                fold: 0,
                epoch: 1,
                items: vec![LossItem {
                    image_id: "img7".into(),
                    image: "/data/img7.jpg".into(),
                    label: 0,
                    loss: 2.5,
                    probs: vec![0.08, 0.92],
                }],
            },
        });
        let plc = |id: &str, old: &str, new: &str, epoch| PlcRow {
            fold: 1,
            epoch,
            image_id: id.into(),
            old: old.into(),
            new: new.into(),
            p_old: Some(0.1),
            p_new: Some(0.9),
        };
        app.corrections_file = CorrectionsFile {
            plc: vec![
                plc("img3", "a", "b", 0),
                plc("img3", "b", "a", 1),
                plc("img4", "b", "a", 1),
            ],
            reviews: Vec::new(),
        };
        app
    }

    #[test]
    fn lists_top_losses_and_corrected_images() {
        let mut app = app_with_items();
        handle(&mut app, Action::OpenViewer);
        assert_eq!(app.overlay, Overlay::Viewer);
        let top = items(&app);
        assert_eq!(top.len(), 1);
        assert_eq!(
            (top[0].label.as_str(), top[0].suggested.as_str()),
            ("a", "b")
        );
        assert_eq!(top[0].probs[0], ("b".to_string(), 0.92));
        handle(&mut app, Action::SwitchList);
        let corrected = items(&app);
        // One entry per image, the latest first; img3's data label is a.
        assert_eq!(corrected.len(), 2);
        assert_eq!(corrected[0].image_id, "img4");
        assert_eq!(corrected[1].image_id, "img3");
        assert_eq!(
            (corrected[1].label.as_str(), corrected[1].suggested.as_str()),
            ("a", "a")
        );
        assert!(corrected[1].detail.starts_with("2 correction(s)"));
    }

    #[test]
    fn accept_reject_and_set_queue_review_rows() {
        let mut app = app_with_items();
        handle(&mut app, Action::OpenViewer);
        handle(&mut app, Action::AcceptLabel);
        handle(&mut app, Action::SwitchList);
        handle(&mut app, Action::NextItem);
        handle(&mut app, Action::NextItem);
        handle(&mut app, Action::RejectLabel);
        handle(&mut app, Action::PrevItem);
        handle(&mut app, Action::SetClass);
        handle(&mut app, Action::NextClass);
        handle(&mut app, Action::NextClass);
        assert_eq!(
            app.viewer.picking,
            Some(1),
            "the cursor stops at the last class"
        );
        handle(&mut app, Action::ChooseClass);
        assert_eq!(app.viewer.picking, None);
        let got: Vec<(&str, &str, &str, Review)> = app
            .reviews_out
            .iter()
            .map(|r| {
                (
                    r.image_id.as_str(),
                    r.original.as_str(),
                    r.label.as_str(),
                    r.review,
                )
            })
            .collect();
        assert_eq!(
            got,
            vec![
                ("img7", "a", "b", Review::Accepted),
                ("img3", "a", "a", Review::Rejected),
                ("img4", "b", "b", Review::Set),
            ]
        );
        // Shown at once, before the loop has written anything.
        assert_eq!(
            items(&app)[0].review.as_ref().map(|r| r.review),
            Some(Review::Set)
        );
        handle(&mut app, Action::CloseViewer);
        assert_eq!(app.overlay, Overlay::None);
    }

    #[test]
    fn an_empty_list_ignores_the_review_keys() {
        let mut app = App::from_events(&[run_started(0.0)]);
        handle(&mut app, Action::OpenViewer);
        handle(&mut app, Action::AcceptLabel);
        handle(&mut app, Action::SetClass);
        assert!(app.reviews_out.is_empty());
        assert_eq!(app.viewer.picking, None);
    }
}
