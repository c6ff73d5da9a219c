//! Cursor paging over a list already in memory and in list order (a charge's refunds, a charge's history).

use crate::store::PageCursor;

/// The page of `items` that `cursor` and `limit` select, and whether more lie beyond it in the
/// cursor's direction. When the cursor names an id that is not in `items`, that id is the error.
pub fn page_in_memory<'a, 'c, T>(
    items: &'a [T],
    cursor: &'c PageCursor,
    limit: usize,
    id_of: impl Fn(&T) -> &str,
) -> Result<(&'a [T], bool), &'c str> {
    let position = |id: &'c str| items.iter().position(|item| id_of(item) == id).ok_or(id);
    match cursor {
        PageCursor::Newest => Ok((&items[..limit.min(items.len())], items.len() > limit)),
        PageCursor::StartingAfter(id) => {
            let rest = &items[position(id)? + 1..];
            Ok((&rest[..limit.min(rest.len())], rest.len() > limit))
        }
        PageCursor::EndingBefore(id) => {
            let end = position(id)?;
            let start = end.saturating_sub(limit);
            Ok((&items[start..end], start > 0))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn page(cursor: PageCursor, limit: usize) -> Result<(Vec<&'static str>, bool), String> {
        const ITEMS: [&str; 5] = ["a", "b", "c", "d", "e"];
        page_in_memory(&ITEMS, &cursor, limit, |item| item)
            .map(|(window, has_more)| (window.to_vec(), has_more))
            .map_err(str::to_string)
    }

    #[test]
    fn pages_forward_and_backward_from_a_cursor() {
        assert_eq!(page(PageCursor::Newest, 2), Ok((vec!["a", "b"], true)));
        assert_eq!(
            page(PageCursor::Newest, 5),
            Ok((vec!["a", "b", "c", "d", "e"], false))
        );
        let after = |id: &str| PageCursor::StartingAfter(id.to_string());
        let before = |id: &str| PageCursor::EndingBefore(id.to_string());
        assert_eq!(page(after("b"), 2), Ok((vec!["c", "d"], true)));
        assert_eq!(page(after("c"), 2), Ok((vec!["d", "e"], false)));
        assert_eq!(page(after("e"), 2), Ok((vec![], false)));
        assert_eq!(page(before("d"), 2), Ok((vec!["b", "c"], true)));
        assert_eq!(page(before("c"), 2), Ok((vec!["a", "b"], false)));
        assert_eq!(page(before("a"), 2), Ok((vec![], false)));
        assert_eq!(page(after("zz"), 2), Err("zz".to_string()));
    }
}
